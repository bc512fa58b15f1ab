"""Regenerate the bundled sample datasets in studio/samples/ (seeded, so the output is stable).

The texts are written for this project: the support inbox and help-centre answers of a fictional
online shop, "Northwind Home" (kitchen appliances and smart-home devices). Tickets are composed
from many hand-written fragments, with typos, mixed topics and terse one-liners, so that they
read like a real inbox and are not trivially separable.

    python bench/make_sample_data.py
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "studio" / "samples"
RNG = random.Random(2026)

PRODUCTS = ["AeroBlend 500 blender", "CrispAir fryer XL", "BrewMate coffee machine", "SmartPlug Mini",
            "ThermoSense thermostat", "KettlePro 1.7L", "SousChef stand mixer", "LumiBulb starter kit",
            "DoorSight video doorbell", "PureFlow water filter", "ToastRight 4-slice toaster",
            "CleanSweep robot vacuum", "FreshKeep vacuum sealer", "IceCore ice maker"]
CARRIERS = ["DPD", "UPS", "the courier", "Royal Mail", "DHL", "FedEx"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "last week",
        "yesterday", "two days ago", "on the 3rd", "on the 14th"]
NAMES = ["Sarah", "Tom", "Priya", "Marco", "Hannah", "Li Wei", "Ahmed", "Julia", "Ben", "Chloe",
         "Oskar", "Fatima", "Dave", "Grace", "Luis", "Anna", "Kofi", "Mia"]


def order_no() -> str:
    return RNG.choice(["#", "order ", "Order #", "NW-", "order no. "]) + str(RNG.randint(100000, 999999))


def money() -> str:
    return RNG.choice(["£", "€", "$"]) + f"{RNG.randint(9, 480)}.{RNG.choice(['00', '99', '50', '95'])}"


def fill(template: str) -> str:
    return template.format(
        product=RNG.choice(PRODUCTS), product2=RNG.choice(PRODUCTS), order=order_no(),
        carrier=RNG.choice(CARRIERS), day=RNG.choice(DAYS), amount=money(), amount2=money(),
        n=RNG.randint(2, 14), code=f"E{RNG.randint(10, 99)}", pct=RNG.choice([10, 15, 20, 25]),
    )


BODIES = {
    "billing": [
        "I was charged twice for {order}, two payments of {amount} on my card.",
        "My invoice for {order} shows {amount2} but the checkout said {amount}.",
        "The discount code for {pct}% off was not applied and I paid full price.",
        "Can you send me a VAT invoice for {order}? I need it for my company accounts.",
        "My card was declined three times but the bank says there is no problem on their side.",
        "Why is there a pending charge of {amount} when I cancelled the payment?",
        "I paid with PayPal but the order still says awaiting payment.",
        "The price dropped to {amount} the day after I bought the {product}, can I get the difference?",
        "There's a charge from Northwind on my statement I don't recognise, {amount} on {day}.",
        "I'd like to change the billing address on my invoice, it has my old flat on it.",
        "Klarna instalments: I was charged the full {amount} instead of the first instalment.",
        "Please update my saved card, the old one expired and the subscription payment failed.",
        "The gift card balance was not taken off, I was charged {amount} on my card instead.",
        "I got billed for express shipping but chose standard delivery.",
    ],
    "shipping": [
        "My order {order} still hasn't arrived, it was supposed to come {day}.",
        "Tracking for {order} has said 'in transit' for {n} days now. Where is it?",
        "{carrier} says the parcel was delivered but there is nothing at my door.",
        "Can I change the delivery address for {order}? I'm moving this weekend.",
        "The box arrived crushed and the {product} inside is dented.",
        "Do you ship to Ireland / the Channel Islands? The checkout won't let me pick it.",
        "Only half of my order came. The {product} is missing from the parcel.",
        "The driver left my parcel with a neighbour I don't know, I need it redirected.",
        "How long does standard delivery take? I need the {product} by {day}.",
        "I got someone else's parcel, it's addressed to a different name.",
        "The tracking link in the email doesn't work, it says the number is invalid.",
        "Can you hold the parcel at a pickup point? I'm not home during the day.",
        "It's been {n} working days and no dispatch email for {order}.",
        "The delivery slot was {day} morning but {carrier} never came.",
    ],
    "account_access": [
        "I can't log in, it says my password is wrong but I just reset it.",
        "The password reset email never arrives, I've checked spam too.",
        "My account is locked after too many attempts, please unlock it.",
        "I want to change the email address on my account to my work one.",
        "Someone logged into my account from another country, I think it was hacked.",
        "The two-factor code SMS doesn't come through to my new phone number.",
        "Please delete my account and all my data (GDPR request).",
        "I have two accounts with the same email somehow, can you merge them?",
        "The app keeps logging me out every few minutes.",
        "I signed up with Google but now want to use a normal password.",
        "Can't sign in on the website, the login button just spins.",
        "How do I remove an old address and card saved in my profile?",
        "My loyalty points disappeared from my account after I changed my email.",
    ],
    "technical_issue": [
        "The {product} shows error {code} and stops after a few seconds.",
        "My {product} won't connect to the wifi, the app says device not found.",
        "After the firmware update the {product} keeps restarting.",
        "The {product} is making a loud grinding noise when it runs.",
        "The display on the {product} is blank but the light is on.",
        "The app crashes as soon as I open the schedule screen.",
        "The {product} won't turn on at all, I tried another socket.",
        "Pairing with Alexa fails, it says the skill cannot reach the device.",
        "The {product} heats up far too much and smells of burning plastic.",
        "Since {day} the {product} goes offline every night around 2am.",
        "The buttons on the {product} don't respond unless I press really hard.",
        "How do I factory reset the {product}? The manual isn't clear.",
        "Water is leaking from the bottom of the {product}.",
        "The timer on the {product} resets itself whenever I close the lid.",
    ],
    "returns_refunds": [
        "I want to return the {product}, it's not what I expected.",
        "I sent the {product} back {day}, when will I get my refund of {amount}?",
        "Can I exchange the {product} for the {product2}?",
        "The returns label doesn't print, can you email it again?",
        "I returned {order} {n} days ago and still no refund.",
        "The {product} was a gift, can I return it without the receipt?",
        "Is the return free or do I pay the postage?",
        "You refunded {amount2} but I paid {amount} for the {product}.",
        "I opened the box but never used it, can I still send it back?",
        "The {product} is faulty, I'd like a refund please, not a repair.",
        "How do I return only one item from {order}?",
        "Where do I drop off a return? There is no pickup point near me.",
        "It's been past 30 days but the {product} broke, can I still return it?",
    ],
    "product_question": [
        "Does the {product} work with Google Home?",
        "Is the jug of the {product} dishwasher safe?",
        "What's the difference between the {product} and the {product2}?",
        "Will the {product} be back in stock soon? It's been sold out for weeks.",
        "Can I use the {product} with a UK plug in Spain?",
        "What is the warranty on the {product}?",
        "Is the {product} loud? I live in a small flat.",
        "Do you sell replacement filters / parts for the {product}?",
        "How many watts does the {product} use?",
        "Is the {product} BPA free?",
        "Can the {product} run on a schedule when I'm away from home?",
        "Does the {product} come with a manual in German?",
        "Which colour options are there for the {product}?",
    ],
    "cancellation": [
        "Please cancel {order}, I ordered the wrong model.",
        "I want to cancel my BrewMate bean subscription from next month.",
        "Can I still cancel {order}? It hasn't shipped yet.",
        "I ordered the {product} twice by mistake, please cancel one of them.",
        "Cancel my order please, I found it cheaper elsewhere.",
        "How do I stop the monthly filter subscription? I can't find the option.",
        "I placed {order} {day} but no longer need it, please cancel before dispatch.",
        "Please cancel the extended warranty I added to {order}.",
        "Cancel the pre-order for the {product}, the date keeps moving.",
        "I'd like to cancel my Northwind Plus membership and not be charged again.",
    ],
}

# Sentences that mention another topic: real tickets mix concerns, which keeps the task honest.
CROSS = {
    "billing": "I also haven't received the parcel yet.",
    "shipping": "I was charged for express too, which is annoying.",
    "account_access": "I need to get in to see my order status.",
    "technical_issue": "If it can't be fixed I might want a refund.",
    "returns_refunds": "It also showed error {code} before it died completely.",
    "product_question": "I might cancel my order if it doesn't.",
    "cancellation": "If it has already shipped, how do I return it?",
}
# When a ticket raises a second topic, agents sometimes file it under that one instead: real
# triage is inconsistent, so no model should reach 100% on this set.
CROSS_LABEL = {"billing": "shipping", "shipping": "billing", "account_access": "shipping",
               "technical_issue": "returns_refunds", "returns_refunds": "technical_issue",
               "product_question": "cancellation", "cancellation": "returns_refunds"}
OPENERS = ["Hi,", "Hello,", "Hi there,", "Good morning,", "Dear Northwind,", "Hey,", "", "", "", "To whom it may concern,"]
DETAILS = ["", "", "", "Order number is {order}.", "I bought it {day}.", "This is the second time I'm writing about this.",
           "Please help asap.", "I've attached a photo.", "Been a customer for years and never had this before.",
           "Can someone call me back?", "I already tried the chat but got no answer."]
CLOSERS = ["", "", "Thanks", "Thank you", "Cheers", "Regards", "Kind regards", "Many thanks", "thx"]


def typo(text: str) -> str:
    if RNG.random() < 0.15 and len(text) > 20:
        i = RNG.randrange(5, len(text) - 5)
        text = text[:i] + text[i + 1] + text[i] + text[i + 2:]
    if RNG.random() < 0.1:
        text = text.lower()
    return text


def ticket(label: str) -> tuple[str, str]:
    """A ticket text and the category an agent filed it under."""
    body = fill(RNG.choice(BODIES[label]))
    if RNG.random() < 0.3:
        body += " " + fill(CROSS[label])
        if RNG.random() < 0.3:
            label = CROSS_LABEL[label]
    if RNG.random() < 0.25:
        return typo(body), label  # terse one-liner, as many tickets are
    parts = [RNG.choice(OPENERS), body, fill(RNG.choice(DETAILS))]
    closer = RNG.choice(CLOSERS)
    if closer:
        parts.append(f"{closer}, {RNG.choice(NAMES)}" if RNG.random() < 0.6 else closer)
    return typo(" ".join(p for p in parts if p)), label


def make_tickets(n: int = 3000) -> list[dict]:
    weights = {"billing": 16, "shipping": 22, "account_access": 10, "technical_issue": 18,
               "returns_refunds": 16, "product_question": 10, "cancellation": 8}
    labels = RNG.choices(list(weights), weights=list(weights.values()), k=n)
    rows = []
    for i, topic in enumerate(labels):
        text, label = ticket(topic)
        rows.append({"ticket_id": f"T{100000 + i}", "channel": RNG.choice(["email", "chat", "web form"]),
                     "text": text, "category": label})
    return rows


FAQ = [
    (["How long does standard delivery take?", "When will my order arrive with standard shipping?",
      "What are your delivery times?"],
     "Standard delivery takes 3 to 5 working days in the UK and 5 to 8 working days to the EU. "
     "You get a tracking link by email as soon as the parcel leaves our warehouse."),
    (["Is there express delivery?", "Can I get my order faster?", "Do you offer next-day delivery?"],
     "Yes. Express delivery costs £6.95 and arrives the next working day if you order before 2 pm. "
     "Choose it at checkout; it is not available for large items such as the CleanSweep robot vacuum."),
    (["How do I return a product?", "What is your returns policy?", "Can I send something back?"],
     "You can return any product within 30 days of delivery. Open Orders in your account, choose "
     "Return, print the free label and drop the parcel at any DPD pickup point."),
    (["When will I get my refund?", "How long do refunds take?", "I returned my item, where is my money?"],
     "We refund within 5 working days of receiving your return, to the card or account you paid "
     "with. Your bank may take another 3 to 5 days to show it."),
    (["What warranty do your appliances have?", "Is there a guarantee on the products?",
      "How long is the warranty?"],
     "Every Northwind appliance has a 2-year warranty covering faults in materials and workmanship. "
     "Register the product in the app to extend it to 3 years at no cost."),
    (["My device will not connect to wifi. What should I do?", "The app cannot find my device.",
      "How do I connect my smart device to the network?"],
     "Make sure your phone is on a 2.4 GHz wifi network, keep the device within 5 metres of the "
     "router, then hold the power button for 10 seconds until the light blinks blue and add it again in the app."),
    (["How do I reset my password?", "I forgot my password.", "I cannot log in to my account."],
     "Click 'Forgot password' on the sign-in page and follow the link we email you; it is valid "
     "for 30 minutes. If no email arrives, check your spam folder or contact us from the address on your account."),
    (["Can I cancel my order?", "How do I cancel an order?", "I ordered the wrong item, can I cancel?"],
     "You can cancel an order in your account until it is dispatched, usually within 2 hours of "
     "ordering. After dispatch, wait for the delivery and return it for free within 30 days."),
    (["What does error E21 mean on my fryer?", "My CrispAir shows E21.", "Error code E21 on the air fryer."],
     "E21 means the temperature sensor is overheating. Unplug the fryer, let it cool for 30 minutes "
     "and make sure the air vents at the back are not blocked. If the error comes back, contact us for a repair."),
    (["How often should I change the water filter?", "When do I replace the PureFlow filter?",
      "How long does a filter cartridge last?"],
     "Replace the PureFlow cartridge every 2 months or after 150 litres, whichever comes first. "
     "The light on the lid turns orange when it is time; a filter subscription sends one automatically."),
    (["Is the blender jug dishwasher safe?", "Can I put the AeroBlend jug in the dishwasher?",
      "How do I clean the blender?"],
     "Yes, the AeroBlend jug and lid are dishwasher safe on the top rack. The base with the motor "
     "must never go in water: wipe it with a damp cloth."),
    (["Do your smart devices work with Alexa and Google Home?", "Is the thermostat compatible with Google Home?",
      "Can I use voice control?"],
     "All Northwind smart devices work with Amazon Alexa and Google Home. Link your Northwind "
     "account in the Alexa or Google Home app, and the devices appear there within a minute."),
    (["Do you ship outside the UK?", "Can I order from Ireland?", "Which countries do you deliver to?"],
     "We deliver to the UK, Ireland and 18 EU countries. Delivery to the Channel Islands and "
     "outside Europe is not available yet."),
    (["How do I stop my subscription?", "How can I cancel the coffee bean subscription?",
      "I want to end my monthly subscription."],
     "Go to Account, then Subscriptions, and choose Cancel. You can cancel any time before the next "
     "billing date and you will not be charged again."),
    (["I was charged twice for one order.", "Why are there two payments on my card?",
      "Double charge on my order."],
     "A second charge is usually a pre-authorisation that your bank releases within 3 to 5 days. "
     "If both payments are still there after 5 days, send us your order number and we will refund the duplicate."),
    (["Can I change my delivery address?", "I need to send my order to a different address.",
      "How do I update the shipping address?"],
     "You can change the address in your account until the order is dispatched. After dispatch, use "
     "the link in the tracking email to redirect the parcel or choose a pickup point."),
]
PREFIXES = ["", "", "Hi, ", "Hello! ", "Quick question: ", "Please help. ", "Hey, "]


def make_faq() -> list[dict]:
    """Every distinct phrasing once, shuffled: no exact duplicate can straddle train and test."""
    rows = [{"question": prefix + q, "answer": answer}
            for questions, answer in FAQ for q in questions for prefix in dict.fromkeys(PREFIXES)]
    RNG.shuffle(rows)
    return rows


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    tickets = make_tickets()
    with (OUT / "support_tickets.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(tickets[0]))
        writer.writeheader()
        writer.writerows(tickets)
    with (OUT / "shop_faq.jsonl").open("w", encoding="utf-8") as f:
        for row in make_faq():
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(tickets)} tickets and the FAQ to {OUT}")


if __name__ == "__main__":
    main()
