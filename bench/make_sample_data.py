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

PRODUCTS = [
    "AeroBlend 500 blender",
    "CrispAir fryer XL",
    "BrewMate coffee machine",
    "SmartPlug Mini",
    "ThermoSense thermostat",
    "KettlePro 1.7L",
    "SousChef stand mixer",
    "LumiBulb starter kit",
    "DoorSight video doorbell",
    "PureFlow water filter",
    "ToastRight 4-slice toaster",
    "CleanSweep robot vacuum",
    "FreshKeep vacuum sealer",
    "IceCore ice maker",
]
CARRIERS = ["DPD", "UPS", "the courier", "Royal Mail", "DHL", "FedEx"]
DAYS = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "last week",
    "yesterday",
    "two days ago",
    "on the 3rd",
    "on the 14th",
]
NAMES = [
    "Sarah",
    "Tom",
    "Priya",
    "Marco",
    "Hannah",
    "Li Wei",
    "Ahmed",
    "Julia",
    "Ben",
    "Chloe",
    "Oskar",
    "Fatima",
    "Dave",
    "Grace",
    "Luis",
    "Anna",
    "Kofi",
    "Mia",
]


def order_no() -> str:
    return RNG.choice(["#", "order ", "Order #", "NW-", "order no. "]) + str(RNG.randint(100000, 999999))


def money() -> str:
    return RNG.choice(["£", "€", "$"]) + f"{RNG.randint(9, 480)}.{RNG.choice(['00', '99', '50', '95'])}"


def fill(template: str) -> str:
    return template.format(
        product=RNG.choice(PRODUCTS),
        product2=RNG.choice(PRODUCTS),
        order=order_no(),
        carrier=RNG.choice(CARRIERS),
        day=RNG.choice(DAYS),
        amount=money(),
        amount2=money(),
        n=RNG.randint(2, 14),
        code=f"E{RNG.randint(10, 99)}",
        pct=RNG.choice([10, 15, 20, 25]),
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
CROSS_LABEL = {
    "billing": "shipping",
    "shipping": "billing",
    "account_access": "shipping",
    "technical_issue": "returns_refunds",
    "returns_refunds": "technical_issue",
    "product_question": "cancellation",
    "cancellation": "returns_refunds",
}
OPENERS = ["Hi,", "Hello,", "Hi there,", "Good morning,", "Dear Northwind,", "Hey,", "", "", "", "To whom it may concern,"]
DETAILS = [
    "",
    "",
    "",
    "Order number is {order}.",
    "I bought it {day}.",
    "This is the second time I'm writing about this.",
    "Please help asap.",
    "I've attached a photo.",
    "Been a customer for years and never had this before.",
    "Can someone call me back?",
    "I already tried the chat but got no answer.",
]
CLOSERS = ["", "", "Thanks", "Thank you", "Cheers", "Regards", "Kind regards", "Many thanks", "thx"]


def typo(text: str) -> str:
    if RNG.random() < 0.15 and len(text) > 20:
        i = RNG.randrange(5, len(text) - 5)
        text = text[:i] + text[i + 1] + text[i] + text[i + 2 :]
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
    weights = {
        "billing": 16,
        "shipping": 22,
        "account_access": 10,
        "technical_issue": 18,
        "returns_refunds": 16,
        "product_question": 10,
        "cancellation": 8,
    }
    labels = RNG.choices(list(weights), weights=list(weights.values()), k=n)
    rows = []
    for i, topic in enumerate(labels):
        text, label = ticket(topic)
        rows.append(
            {"ticket_id": f"T{100000 + i}", "channel": RNG.choice(["email", "chat", "web form"]), "text": text, "category": label}
        )
    return rows


FAQ = [
    (
        [
            "How long does standard delivery take?",
            "When will my order arrive with standard shipping?",
            "What are your delivery times?",
        ],
        "Standard delivery takes 3 to 5 working days in the UK and 5 to 8 working days to the EU. "
        "You get a tracking link by email as soon as the parcel leaves our warehouse.",
    ),
    (
        ["Is there express delivery?", "Can I get my order faster?", "Do you offer next-day delivery?"],
        "Yes. Express delivery costs £6.95 and arrives the next working day if you order before 2 pm. "
        "Choose it at checkout; it is not available for large items such as the CleanSweep robot vacuum.",
    ),
    (
        ["How do I return a product?", "What is your returns policy?", "Can I send something back?"],
        "You can return any product within 30 days of delivery. Open Orders in your account, choose "
        "Return, print the free label and drop the parcel at any DPD pickup point.",
    ),
    (
        ["When will I get my refund?", "How long do refunds take?", "I returned my item, where is my money?"],
        "We refund within 5 working days of receiving your return, to the card or account you paid "
        "with. Your bank may take another 3 to 5 days to show it.",
    ),
    (
        ["What warranty do your appliances have?", "Is there a guarantee on the products?", "How long is the warranty?"],
        "Every Northwind appliance has a 2-year warranty covering faults in materials and workmanship. "
        "Register the product in the app to extend it to 3 years at no cost.",
    ),
    (
        [
            "My device will not connect to wifi. What should I do?",
            "The app cannot find my device.",
            "How do I connect my smart device to the network?",
        ],
        "Make sure your phone is on a 2.4 GHz wifi network, keep the device within 5 metres of the "
        "router, then hold the power button for 10 seconds until the light blinks blue and add it again in the app.",
    ),
    (
        ["How do I reset my password?", "I forgot my password.", "I cannot log in to my account."],
        "Click 'Forgot password' on the sign-in page and follow the link we email you; it is valid "
        "for 30 minutes. If no email arrives, check your spam folder or contact us from the address on your account.",
    ),
    (
        ["Can I cancel my order?", "How do I cancel an order?", "I ordered the wrong item, can I cancel?"],
        "You can cancel an order in your account until it is dispatched, usually within 2 hours of "
        "ordering. After dispatch, wait for the delivery and return it for free within 30 days.",
    ),
    (
        ["What does error E21 mean on my fryer?", "My CrispAir shows E21.", "Error code E21 on the air fryer."],
        "E21 means the temperature sensor is overheating. Unplug the fryer, let it cool for 30 minutes "
        "and make sure the air vents at the back are not blocked. If the error comes back, contact us for a repair.",
    ),
    (
        [
            "How often should I change the water filter?",
            "When do I replace the PureFlow filter?",
            "How long does a filter cartridge last?",
        ],
        "Replace the PureFlow cartridge every 2 months or after 150 litres, whichever comes first. "
        "The light on the lid turns orange when it is time; a filter subscription sends one automatically.",
    ),
    (
        ["Is the blender jug dishwasher safe?", "Can I put the AeroBlend jug in the dishwasher?", "How do I clean the blender?"],
        "Yes, the AeroBlend jug and lid are dishwasher safe on the top rack. The base with the motor "
        "must never go in water: wipe it with a damp cloth.",
    ),
    (
        [
            "Do your smart devices work with Alexa and Google Home?",
            "Is the thermostat compatible with Google Home?",
            "Can I use voice control?",
        ],
        "All Northwind smart devices work with Amazon Alexa and Google Home. Link your Northwind "
        "account in the Alexa or Google Home app, and the devices appear there within a minute.",
    ),
    (
        ["Do you ship outside the UK?", "Can I order from Ireland?", "Which countries do you deliver to?"],
        "We deliver to the UK, Ireland and 18 EU countries. Delivery to the Channel Islands and "
        "outside Europe is not available yet.",
    ),
    (
        [
            "How do I stop my subscription?",
            "How can I cancel the coffee bean subscription?",
            "I want to end my monthly subscription.",
        ],
        "Go to Account, then Subscriptions, and choose Cancel. You can cancel any time before the next "
        "billing date and you will not be charged again.",
    ),
    (
        ["I was charged twice for one order.", "Why are there two payments on my card?", "Double charge on my order."],
        "A second charge is usually a pre-authorisation that your bank releases within 3 to 5 days. "
        "If both payments are still there after 5 days, send us your order number and we will refund the duplicate.",
    ),
    (
        [
            "Can I change my delivery address?",
            "I need to send my order to a different address.",
            "How do I update the shipping address?",
        ],
        "You can change the address in your account until the order is dispatched. After dispatch, use "
        "the link in the tracking email to redirect the parcel or choose a pickup point.",
    ),
    # Products: AeroBlend 500 blender
    (
        [
            "My AeroBlend will not start.",
            "The blender does nothing when I press the button.",
            "Why won't the AeroBlend 500 turn on?",
        ],
        "The AeroBlend 500 only starts when the jug is locked on the base and the lid tab is clipped into the "
        "handle. Turn the jug clockwise until it clicks; the ring light turns white when it is ready to "
        "blend.",
    ),
    (
        ["Can I buy a replacement blade for the AeroBlend?", "The blender blade is blunt, do you sell spare blades?"],
        "A replacement blade assembly for the AeroBlend 500 costs £14.99 under Shop > Spare parts and fits "
        "every jug sold since 2022. Unscrew the ring under the jug anticlockwise to swap it, and hold the "
        "blade by its hub, never by the edges.",
    ),
    (
        ["Can I blend hot soup in the AeroBlend?", "Is it safe to put hot liquids in the blender?"],
        "Yes, up to 70 °C. Fill the 1.5-litre jug no more than halfway, take the centre cap out of the lid so "
        "steam can escape, cover the hole with a folded tea towel and start on speed 1 before going higher.",
    ),
    # Products: CrispAir fryer XL
    (
        ["How do I clean the air fryer basket?", "Is the CrispAir drawer dishwasher safe?", "Food is stuck to my fryer basket."],
        "The CrispAir drawer and crisper plate are dishwasher safe, but washing them by hand in warm soapy "
        "water keeps the non-stick coating longer. If food is stuck, soak them for 10 minutes and use a soft "
        "sponge; never use metal scourers or oven cleaner.",
    ),
    (
        ["My air fryer is smoking.", "White smoke is coming out of the CrispAir.", "Why does the fryer smoke when I cook bacon?"],
        "White smoke comes from fat burning in the bottom of the drawer. With fatty foods such as bacon or "
        "sausages, pour 2 tablespoons of water under the crisper plate and empty the fat after each batch. "
        "Black smoke means burning food: stop the fryer and unplug it.",
    ),
    (
        ["What does E05 mean on the CrispAir?", "The fryer shows E05 and won't heat."],
        "E05 means the drawer is not fully closed, so the heater stays off for safety. Pull the drawer out, "
        "check that nothing is caught on the rails or the edge of the crisper plate, and push it back until "
        "it clicks. Clean the rails if the error keeps coming back.",
    ),
    # Products: BrewMate coffee machine
    (
        [
            "How do I descale the BrewMate?",
            "The cup icon is flashing orange on my coffee machine.",
            "Descaling instructions for the coffee machine?",
        ],
        "Descale when the cup icon flashes orange, roughly every 300 cups. Fill the tank with 500 ml of water "
        "and one sachet of Northwind descaler, put a 1-litre bowl under the spout and hold the two-cup button "
        "for 5 seconds; the 25-minute programme then runs by itself.",
    ),
    (
        ["What does E12 mean on the BrewMate?", "Coffee machine says E12 and no water comes out."],
        "E12 means no water is reaching the pump: the tank is empty, not pushed fully down, or its float is "
        "stuck. Refill the tank, press it down firmly and run a rinse; if E12 stays after a descale, start a "
        "warranty claim.",
    ),
    (
        [
            "Can I change how often my coffee beans are delivered?",
            "How do I skip a bean delivery?",
            "I want to switch to a different coffee in my subscription.",
        ],
        "In Account > Subscriptions, choose Edit to change the beans, the bag size (250 g or 1 kg) or the "
        "interval of 2, 4 or 6 weeks. Skip next delivery moves your next bag back by one interval without "
        "cancelling the plan.",
    ),
    # Products: SmartPlug Mini
    (
        [
            "How can I see how much electricity a device uses?",
            "Does the SmartPlug measure energy?",
            "Where is the energy monitoring in the app?",
        ],
        "Open the SmartPlug Mini in the app and tap Energy to see live watts and daily, weekly and monthly "
        "kWh. Enter your tariff in pence or cents under Settings > Energy price and the app shows the cost as "
        "well.",
    ),
    (
        [
            "How do I set a schedule for my smart plug?",
            "Can the plug switch on and off at set times?",
            "Will my schedules work if the wifi goes down?",
        ],
        "Tap the plug, then Schedules > Add, and pick times and days or sunrise and sunset. Schedules are "
        "stored on the plug itself, so they keep running if your wifi or our servers are down; each plug "
        "holds up to 20 schedules.",
    ),
    # Products: ThermoSense thermostat
    (
        ["Will the ThermoSense work with my boiler?", "Is the thermostat compatible with a combi boiler?"],
        "ThermoSense works with most combi and system boilers that use a 230 V or volt-free on/off switch, "
        "and with OpenTherm boilers. Run the compatibility checker under Thermostat > Before you buy in the "
        "app; heat pumps and electric storage heaters are not supported.",
    ),
    (
        [
            "Can someone install the thermostat for me?",
            "Do you offer ThermoSense installation?",
            "How do I book an engineer to fit my thermostat?",
        ],
        "Professional installation of the ThermoSense costs £79 in mainland UK. Add it at checkout or later "
        "under Orders > Book installation, and an engineer calls within 2 working days to arrange a slot; the "
        "visit takes about an hour.",
    ),
    (
        ["Can the heating turn down when I leave home?", "How does Away Assist work?"],
        "Turn on Away Assist under Thermostat > Settings. When every phone in the household is more than 500 "
        "m from home, the temperature drops to 16 °C, and the heating comes back on as soon as the first "
        "person heads home.",
    ),
    # Products: KettlePro 1.7L
    (
        ["How do I descale the kettle?", "There is white limescale in my KettlePro."],
        "Fill the KettlePro with 1 litre of water and 2 tablespoons of white vinegar or one descaler sachet, "
        "boil it, leave it for 30 minutes, then empty it and boil clean water twice. In hard-water areas, "
        "descale every 4 weeks.",
    ),
    (
        [
            "Can the KettlePro boil to a lower temperature for tea?",
            "What temperature settings does the kettle have?",
            "How does keep warm work on the kettle?",
        ],
        "The KettlePro has five presets: 40, 70, 80, 90 and 100 °C. Press Keep Warm after choosing a "
        "temperature to hold it for 30 minutes; 80 °C suits green tea and 90 °C suits pour-over coffee.",
    ),
    (
        ["The kettle switches itself off before it boils.", "My KettlePro cuts out early."],
        "Usually limescale on the base plate makes the thermostat trip early, so descale it first. Also check "
        "that the lid is fully clicked shut, because escaping steam triggers the switch; if it still cuts "
        "out, start a warranty claim.",
    ),
    # Products: SousChef stand mixer
    (
        ["What attachments come with the SousChef mixer?", "Is there a pasta attachment for the stand mixer?"],
        "The SousChef comes with a whisk, a dough hook, a flat beater and a 5-litre stainless steel bowl. The "
        "pasta roller, mincer and spiraliser fit the front hub and are sold separately from £39 each.",
    ),
    (
        [
            "The beater hits the bottom of the bowl.",
            "How do I adjust the height of the mixer head?",
            "The SousChef does not mix the bottom of the bowl.",
        ],
        "Tilt the head back and turn the adjustment screw underneath it with a flat screwdriver: "
        "anticlockwise raises the beater, clockwise lowers it. The height is right when a 2p coin in the bowl "
        "is nudged slightly but not pushed around.",
    ),
    # Products: LumiBulb starter kit
    (
        ["What is in the LumiBulb starter kit?", "Do I need a hub for the smart bulbs?"],
        "The LumiBulb starter kit has 3 colour bulbs and a bridge that plugs into your router with an "
        "Ethernet cable. The bridge runs up to 50 bulbs and keeps schedules working when your phone is away "
        "from home.",
    ),
    (
        ["My smart bulbs flicker.", "Can I use LumiBulbs with a dimmer switch?", "The LumiBulb buzzes when dimmed."],
        "LumiBulbs need a normal on/off wall switch; on a dimmer switch they flicker or buzz. Leave the wall "
        "switch on and dim them in the app, by voice, or with the LumiBulb remote, which sticks to the wall "
        "with the pad supplied.",
    ),
    (
        ["How do I reset a LumiBulb?", "A bulb will not pair again after I moved it."],
        "Switch the light off and on 5 times, about 1 second each time, ending with it on. The bulb flashes "
        "twice when it has reset, and you can then add it again under Devices > Add > LumiBulb.",
    ),
    # Products: DoorSight video doorbell
    (
        ["How long does the doorbell battery last?", "How do I charge the DoorSight?"],
        "The DoorSight battery lasts 3 to 6 months, depending on how many events it records. Release it with "
        "the tool in the box and charge it with the USB-C cable for about 5 hours; the app warns you when it "
        "drops to 15%.",
    ),
    (
        [
            "Does the video doorbell record video?",
            "How long are DoorSight clips stored?",
            "Do I need a subscription for the doorbell?",
        ],
        "Live view and alerts are free. To keep recordings, put a microSD card of up to 128 GB in the chime "
        "for free local storage, or join Northwind Plus to keep 30 days of clips in the cloud.",
    ),
    (
        [
            "I get too many motion alerts from the doorbell.",
            "The DoorSight keeps alerting me about cars.",
            "How do I stop motion notifications for the street?",
        ],
        "In the app, open DoorSight > Motion settings, draw activity zones that leave out the pavement and "
        "road, then turn on People only. Lowering the sensitivity to 3 of 5 also stops trees and passing "
        "headlights from triggering alerts.",
    ),
    # Products: PureFlow water filter
    (
        ["How do I reset the filter light?", "The PureFlow light is still orange after I changed the cartridge."],
        "After fitting a new cartridge, hold the button on the lid for 5 seconds until the light flashes "
        "green 3 times. This restarts the 2-month countdown; the light does not reset by itself.",
    ),
    (
        ["Can I recycle the used filter cartridges?", "What do I do with old PureFlow cartridges?"],
        "Yes. Request a free Freepost bag under Account > Recycling and send back up to 6 used cartridges at "
        "a time. We recycle the plastic casing and regenerate the carbon, so please do not put them in "
        "household recycling.",
    ),
    (
        ["How does the filter subscription work?", "Can I get PureFlow cartridges delivered automatically?"],
        "The filter subscription sends one PureFlow cartridge every 2 months for £5.99 with free delivery. "
        "You can change the interval to 1 or 3 months, or order an extra cartridge, under Account > "
        "Subscriptions.",
    ),
    # Products: ToastRight 4-slice toaster
    (
        ["How do I clean the toaster?", "How do I get crumbs out of the ToastRight?"],
        "Unplug the ToastRight, slide out the two crumb trays at the back and empty them once a week. Wipe "
        "the outside with a damp cloth, and never poke inside the slots with a knife or fork.",
    ),
    (
        ["The toaster lever will not stay down.", "My ToastRight pops up straight away."],
        "The lever only latches when the toaster is plugged in and switched on at the wall. If it still pops "
        "up, unplug it, empty the crumb trays and shake it upside down, as a crumb on the latch magnet stops "
        "it holding.",
    ),
    # Products: CleanSweep robot vacuum
    (
        [
            "How do I set no-go zones for the robot vacuum?",
            "Can I stop the CleanSweep going into one room?",
            "How do I edit the cleaning map?",
        ],
        "After the first full clean the app saves a map. Tap Map > Edit to name rooms and draw no-go zones or "
        "virtual walls; you can add up to 10 zones per floor and save maps for 3 floors.",
    ),
    (
        ["Hair is tangled in the robot vacuum brush.", "How often should I replace the CleanSweep brushes?"],
        "Remove the main brush weekly and cut away hair with the blade built into the dust bin lid. Replace "
        "the main brush every 6 to 12 months and the side brushes every 3 to 6; a spare kit with a filter "
        "costs £19.99.",
    ),
    (
        ["What does E31 mean on the CleanSweep?", "The robot vacuum says a wheel is stuck."],
        "E31 means a drive wheel is blocked. Turn the robot over, remove hair or thread from around both "
        "wheels and check that they spring back when pressed, then hold the Home button for 3 seconds to "
        "clear the error.",
    ),
    # Products: FreshKeep vacuum sealer
    (
        ["Which bags work with the FreshKeep?", "My vacuum sealer does not suck the air out of the bag."],
        "The FreshKeep needs embossed (textured) vacuum bags or rolls up to 30 cm wide; smooth bags cannot be "
        "evacuated. Make sure the open end is dry and lies flat across the gasket, and freeze soups first or "
        "use Moist mode for wet food.",
    ),
    (
        ["Do you sell replacement gaskets for the vacuum sealer?", "The FreshKeep foam seal is torn."],
        "Yes, a pair of foam gaskets costs £6.99 under Shop > Spare parts. Replace them every 12 months or "
        "when they stay flattened; they press into the grooves in the lid without tools.",
    ),
    # Products: IceCore ice maker
    (
        ["How quickly does the IceCore make ice?", "How much ice does the ice maker produce?"],
        "The first 9 cubes are ready about 8 minutes after you fill it, and it makes up to 12 kg a day. The "
        "basket holds 0.8 kg; when it is full the Ice Full light comes on and production pauses.",
    ),
    (
        ["Why is the ice melting in the IceCore?", "The ice maker basket is not keeping ice frozen."],
        "The IceCore is an ice maker, not a freezer: the basket is insulated but not cooled, so ice slowly "
        "melts and the water drains back into the reservoir to be frozen again. Move ice you want to keep to "
        "your freezer.",
    ),
    (
        ["How do I clean the ice maker?", "How do I drain the IceCore?"],
        "Every 2 weeks, drain the IceCore through the plug at the front bottom, fill it with 1 litre of water "
        "and 1 tablespoon of lemon juice, and hold Select for 5 seconds to run the 20-minute Clean programme. "
        "Rinse with clean water afterwards.",
    ),
    # Smart home and general product questions
    (
        [
            "How do I update the firmware on my device?",
            "Do smart devices update automatically?",
            "Why did my device go offline at night?",
        ],
        "Smart devices install updates automatically between 2 and 4 am, which can take them offline for a "
        "few minutes. To update now, open the device and tap Settings > Firmware > Check for updates, and "
        "keep it powered for the whole update.",
    ),
    (
        [
            "Which phones does the Northwind app work on?",
            "Is there a Northwind app for Android?",
            "Can I control my devices from a computer?",
        ],
        "The Northwind app is free for iPhone with iOS 15 or later and for Android 9 or later. There is no "
        "desktop app, but you can see your orders and the status of your devices on our website under "
        "Account.",
    ),
    (
        ["Do your devices work with Apple Home?", "Is the SmartPlug compatible with HomeKit?", "Do you support Matter?"],
        "The SmartPlug Mini, LumiBulbs and ThermoSense support Matter from firmware 3.2, so you can add them "
        "to Apple Home by scanning the Matter code on the device or its box. The DoorSight and CleanSweep do "
        "not support Matter yet.",
    ),
    (
        ["Alexa says my device is not responding.", "The Northwind skill in Alexa stopped working."],
        "In the Alexa app, go to Skills > Your skills > Northwind, choose Disable, then enable it again and "
        "sign in with your Northwind account. Finish by saying 'Alexa, discover devices'; your device names "
        "reappear within a minute.",
    ),
    (
        ["Can I use my appliance abroad?", "Will the UK plug work in Spain?", "Do your products work in the US?"],
        "Our appliances are built for 220 to 240 V. UK and Irish orders come with UK plugs and EU orders with "
        "type F plugs, so a simple plug adapter works anywhere in Europe; they are not made for 110 V "
        "countries such as the US or Canada.",
    ),
    (
        ["Where can I download the manual?", "Is the manual available in German?", "I lost the instruction booklet."],
        "Every manual is available as a PDF in English, German, French, Spanish, Italian and Dutch under "
        "Support > Manuals. Search by product name or by the model number on the rating label underneath the "
        "appliance.",
    ),
    (
        ["Are your products BPA free?", "Is the blender jug made of plastic?"],
        "Yes, every part that touches food or water is BPA-free. The AeroBlend jug is made of Tritan, the "
        "KettlePro and the SousChef bowl are stainless steel, and the PureFlow jug and IceCore basket are "
        "food-grade polypropylene.",
    ),
    (
        ["Which colours are available?", "Does the kettle come in other colours?", "Is the toaster available in copper?"],
        "Most kitchen appliances come in Chalk White, Graphite and Sage Green, and the KettlePro and "
        "ToastRight are also made in Copper. The colour swatches on each product page show which colours are "
        "in stock.",
    ),
    (
        ["Where can I buy spare parts?", "Do you still sell parts for older models?"],
        "Spare parts and accessories are under Shop > Spare parts, sorted by product. We keep parts available "
        "for at least 7 years after a model is discontinued; if a part isn't listed, send us the model number "
        "and we will order it for you.",
    ),
    (
        ["How loud are your appliances?", "Is the robot vacuum noisy?", "I live in a small flat, which products are quiet?"],
        "Noise levels are listed under Specifications on each product page. For example, the CleanSweep runs "
        "at 58 dB in Eco mode, the BrewMate grinder peaks at 70 dB and the AeroBlend reaches 88 dB at full "
        "speed.",
    ),
    (
        ["How many watts does the kettle use?", "What is the power rating of your appliances?"],
        "Power ratings are on each product page and on the rating label: AeroBlend 1,200 W, CrispAir XL 1,800 "
        "W, KettlePro 3,000 W, ToastRight 1,600 W and SousChef 1,000 W. Smart devices use under 1 W on "
        "standby.",
    ),
    (
        ["Is it safe to leave the air fryer on when I go out?", "Can I switch my toaster on remotely with a smart plug?"],
        "Never leave heating appliances such as the CrispAir, ToastRight or KettlePro running unattended or "
        "switch them on remotely through a SmartPlug. All three switch off by themselves: the fryer when its "
        "timer ends, the kettle when it boils and the toaster after 3 minutes at most.",
    ),
    # Orders and delivery
    (
        ["Where can I track my order?", "How do I find my tracking number?", "My tracking link doesn't work."],
        "Open Account > Orders and tap Track parcel, or use the link in your dispatch email. Tracking can "
        "take up to 24 hours after dispatch to show updates, so an 'invalid number' message on the first day "
        "is normal.",
    ),
    (
        [
            "My parcel is late.",
            "My order still hasn't arrived and the delivery date has passed.",
            "Tracking hasn't updated for days.",
        ],
        "If your parcel hasn't arrived 2 working days after the latest estimated date, send us your order "
        "number. We open an investigation with the carrier, and if the parcel isn't found within 5 working "
        "days we send a replacement or a full refund, whichever you prefer.",
    ),
    (
        ["Tracking says delivered but I have nothing.", "The courier says it was delivered but it wasn't."],
        "Check the safe-place photo on the tracking page, your porch, bins and neighbours first. If the "
        "parcel still hasn't turned up within 48 hours, report it under Orders > Report a problem > Not "
        "received and we will answer within 3 working days.",
    ),
    (
        [
            "My parcel arrived damaged.",
            "The product was broken when it arrived.",
            "The box was crushed and the appliance is dented.",
        ],
        "Take photos of the box and the product and report it within 14 days under Orders > Report a problem "
        "> Arrived damaged. We send a replacement free of charge, and a courier collects the damaged item "
        "when the new one is delivered.",
    ),
    (
        [
            "Only part of my order arrived.",
            "Why did my order come in separate parcels?",
            "Some items are missing from my delivery.",
        ],
        "Larger orders can ship in several parcels from different warehouses, each with its own tracking "
        "number listed on your order page. If an item shows as delivered but is not in the box, report it "
        "within 14 days under Orders > Report a problem > Missing item.",
    ),
    (
        ["I received the wrong item.", "You sent me a different product than I ordered.", "I got someone else's parcel."],
        "Report it under Orders > Report a problem > Wrong item within 14 days, with a photo of the parcel "
        "label. We dispatch the correct product straight away by express and email you a free collection "
        "label for the parcel you received.",
    ),
    (
        ["Do you offer gift wrapping?", "Can I send an order as a present with a message?"],
        "Tick Gift wrap at checkout for £3.50 per item and add a message of up to 200 characters. Gift- "
        "wrapped orders come with a packing slip that shows no prices, so you can send them straight to the "
        "recipient.",
    ),
    (
        ["How do I get an invoice?", "Where can I download my invoice?", "Can you send me a copy of my receipt?"],
        "Open Account > Orders, choose the order and tap Download invoice to get a PDF. Invoices are created "
        "when the order is dispatched; guest customers can request one by sending the order number through "
        "our contact form.",
    ),
    (
        [
            "I need a VAT invoice for my company.",
            "Can you add my company name and VAT number to the invoice?",
            "Does the invoice show VAT?",
        ],
        "Every invoice shows VAT separately, at 20% for UK orders. To add a company name and VAT number, "
        "enter them in Account > Billing details before ordering, or ask us within 30 days and we will "
        "reissue the invoice.",
    ),
    (
        ["How do pre-orders work?", "When am I charged for a pre-order?", "The pre-order date keeps changing."],
        "Pre-orders are charged only when the item ships. If the expected date on the product page moves by "
        "more than 7 days we email you, and you can cancel the pre-order at any time before dispatch in "
        "Account > Orders.",
    ),
    (
        [
            "When will this be back in stock?",
            "The product is sold out, can I reserve one?",
            "Can I get notified when an item is available again?",
        ],
        "Tap Notify me on the product page and we email you as soon as it is back; most items are restocked "
        "within 3 to 4 weeks. Notifications don't reserve stock, so order soon after the email, as popular "
        "items sell out quickly.",
    ),
    (
        ["Do you price match?", "I found it cheaper on another website.", "Will you match a competitor's price?"],
        "We match the price of a UK or Irish retailer selling the same product new and in stock, within 7 "
        "days of your order. Send the link through the Price match form under Support; marketplace sellers "
        "and clearance sales are excluded.",
    ),
    (
        ["The price dropped right after I bought it.", "Can I get the difference if the price goes down?"],
        "If our own price for the same item drops within 14 days of your order, we refund the difference to "
        "your original payment method. Send your order number and a screenshot through the contact form; this "
        "does not apply to flash sales lasting under 24 hours.",
    ),
    (
        ["My discount code does not work.", "Why was my promo code rejected?", "The voucher code says invalid."],
        "Codes are case-sensitive, work once per customer and can't be used on sale items or gift cards. "
        "Enter the code in the Discount code box on the basket page rather than at payment, and check its "
        "expiry date in the email it came in.",
    ),
    (
        ["Do you sell gift cards?", "How do I buy a gift voucher?", "How long is a gift card valid?"],
        "Digital gift cards from £10 to £500 are sold under Shop > Gift cards. They are emailed instantly or "
        "on a date you choose, and can be spent on anything except other gift cards for 24 months from "
        "purchase.",
    ),
    (
        ["How do I use a gift card?", "How can I check my gift card balance?", "My gift card wasn't taken off my order."],
        "Enter the 16-digit code in the Gift card field on the payment page; any remaining balance stays on "
        "the card for later. Check the balance under Shop > Gift cards > Check balance, and if your card was "
        "charged instead, send us the order number.",
    ),
    (
        ["Do you have a student discount?", "Is there a discount for students?"],
        "Students get 10% off full-priced items: verify with Student Beans through the link on our Student "
        "discount page to get a single-use code. You can get a new code every 30 days while your student "
        "status is valid.",
    ),
    (
        ["I didn't get an order confirmation email.", "Did my order go through?"],
        "Confirmation emails arrive within 15 minutes. Check your spam folder and the Orders page of your "
        "account; if the order is listed there, it went through. Guest customers can email us the payment "
        "reference so we can check for a typo in the address.",
    ),
    (
        ["How much is delivery?", "Is delivery free?", "What is the minimum order for free shipping?"],
        "Standard delivery is free on UK orders over £40 and costs £3.95 below that. To Ireland and the EU it "
        "costs €7.95, or nothing on orders over €80; the free threshold applies to standard delivery only.",
    ),
    (
        ["Can I collect my parcel from a pickup point?", "I'm not at home during the day, can you deliver somewhere else?"],
        "Choose Pickup point at checkout to send your order to one of about 6,000 DPD Pickup shops and "
        "lockers. You get a collection code by email, and the parcel is kept for 7 days before it comes back "
        "to us.",
    ),
    (
        ["Will I pay customs charges in Ireland?", "Are there import fees for orders to the EU?"],
        "No. Orders to Ireland and the EU ship from our warehouse in Rotterdam, and the price you see already "
        "includes local VAT, so there are no customs duties or import charges on delivery.",
    ),
    # Payments
    (
        ["What payment methods do you accept?", "Can I pay with PayPal?", "Do you take American Express?"],
        "We accept Visa, Mastercard, American Express, PayPal, Apple Pay, Google Pay and Klarna. We don't "
        "take cash on delivery, cheques or bank transfers, except from approved business accounts.",
    ),
    (
        ["Can I pay in instalments?", "How does Klarna work?", "Is there a buy now pay later option?"],
        "Choose Klarna at checkout to pay in 3 interest-free instalments on orders from £30 to £1,000. The "
        "first instalment is taken when the order ships and the others every 30 days after that; manage them "
        "in the Klarna app.",
    ),
    (
        ["My card was declined.", "Why did my payment fail?", "The payment keeps failing at checkout."],
        "Check that the billing address matches the one your bank holds, and approve the 3D Secure request in "
        "your banking app within 5 minutes. After 3 failed attempts, wait 30 minutes or pay with PayPal; "
        "failed attempts are never charged, though a hold can show briefly.",
    ),
    (
        ["Which currency will I be charged in?", "Can I pay in euros?", "Do you charge currency conversion fees?"],
        "Prices are in pounds for UK delivery and in euros for Ireland and the EU; the delivery country sets "
        "the currency. We charge no conversion fee, but your card issuer may if your card is in another "
        "currency.",
    ),
    (
        ["My PayPal payment is pending.", "The order says awaiting payment but I paid with PayPal."],
        "PayPal payments by card or balance confirm within minutes, but PayPal eCheck payments from a bank "
        "account take up to 6 working days to clear. We hold the order for 7 days and dispatch it as soon as "
        "PayPal confirms.",
    ),
    (
        ["There is a charge from Northwind I don't recognise.", "I don't know what this payment on my statement is."],
        "Our charges appear as NORTHWIND HOME MCR on bank statements. Search your email for the amount and "
        "check Account > Orders and Subscriptions; if you still can't match it, send us the date and the last "
        "4 digits of the card and we will trace it.",
    ),
    (
        ["How do I update my card for my subscription?", "My subscription payment failed because my card expired."],
        "Go to Account > Wallet, add the new card and tap Use for subscriptions. We retry a failed "
        "subscription payment after 3 days, and if it still fails after 3 tries the subscription is paused, "
        "not cancelled.",
    ),
    # Returns and refunds
    (
        [
            "Can I exchange an item?",
            "I want to swap my order for a different colour.",
            "Can I exchange my blender for a different model?",
        ],
        "Start a return under Orders > Return and choose Exchange, then pick the new model or colour. We ship "
        "the replacement as soon as DPD scans your return; if the new item costs more you pay the difference, "
        "and if it costs less we refund it.",
    ),
    (
        ["Can I return a gift?", "I got this as a present, can I return it without a receipt?"],
        "Yes, with the order number from the packing slip: use Support > Return a gift. The refund goes onto "
        "a Northwind gift card in your name rather than back to the buyer, and they are not told about the "
        "return.",
    ),
    (
        [
            "Can I return something I have opened?",
            "I used the product once, can I still return it?",
            "Do I need the original packaging to return an item?",
        ],
        "Opened items can be returned within 30 days if they are complete and undamaged; the original box "
        "helps, but any sturdy box will do. Used PureFlow cartridges and opened descaler sachets can't be "
        "returned for hygiene reasons.",
    ),
    (
        ["I don't have a printer for the returns label.", "The return label will not print."],
        "Choose QR code instead of Print label in the return flow. Show the code on your phone at any DPD "
        "Pickup shop and the staff print the label for you, free of charge.",
    ),
    (
        ["Can I return an item after 30 days?", "It's been more than a month, can I still send it back?"],
        "Change-of-mind returns close 30 days after delivery. If the product is faulty your warranty still "
        "applies, and a fault that appears within the first 6 months entitles you to a replacement or refund "
        "rather than a repair.",
    ),
    (
        [
            "Do I get the delivery cost back when I return something?",
            "Why was my refund less than I paid?",
            "How do I return just one item from my order?",
        ],
        "Tick only the items you want to send back under Orders > Return. Standard delivery is refunded only "
        "when you return the whole order, express charges are not refunded, and if the order used a multi-buy "
        "offer the discount is recalculated for the items you keep.",
    ),
    (
        ["How do I return an item from Ireland?", "Are returns free from the EU?"],
        "Returns from Ireland and the EU are free as well: print the label in Orders > Return and drop the "
        "parcel at a DPD or GLS point. Refunds are paid in euros within 5 working days of the parcel reaching "
        "our Rotterdam returns centre.",
    ),
    # Warranty and repairs
    (
        [
            "How do I make a warranty claim?",
            "My appliance is broken and still under warranty.",
            "How do I get my product repaired?",
        ],
        "Start a claim under Support > Warranty claim with the serial number and a short video of the fault. "
        "We usually decide within 2 working days and either send a replacement or book a free courier "
        "collection for a repair, which takes about 10 working days.",
    ),
    (
        ["How do I register my product?", "Where do I find the serial number?", "How do I get the 3-year warranty?"],
        "In the app, tap + > Register a product, scan the barcode on the rating label underneath the "
        "appliance and upload your receipt. Register within 90 days of purchase; the new warranty end date "
        "then appears under Account > My products.",
    ),
    (
        ["Can you repair my appliance after the warranty has ended?", "How much does an out-of-warranty repair cost?"],
        "Yes, for a fixed price that includes courier collection and return, from £29 for the KettlePro to "
        "£89 for the CleanSweep. We confirm the price before starting, and every repair comes with its own "
        "6-month guarantee.",
    ),
    (
        ["Does the warranty cover accidental damage?", "I dropped my blender, is that covered?", "What is Northwind Care?"],
        "No, the warranty covers faults only. Northwind Care adds 3 years of cover for drops and spills from "
        "£19; you can add it up to 30 days after purchase and cancel it within 45 days for a full refund.",
    ),
    # Account, privacy and membership
    (
        ["How do I delete my account?", "Please remove all my personal data.", "I want to close my Northwind account."],
        "Go to Account > Privacy > Delete account. We erase your data within 30 days but keep invoices for 6 "
        "years, as UK tax law requires; reset your smart devices first, because they stop working once the "
        "account is gone.",
    ),
    (
        ["Can I get a copy of my data?", "How do I download my personal data?"],
        "Go to Account > Privacy > Download my data. Within 72 hours we email you a link to a ZIP file with "
        "your orders, addresses and device history in CSV format; the link works for 7 days.",
    ),
    (
        ["How do I unsubscribe from emails?", "Stop sending me marketing emails.", "How do I stop the newsletter?"],
        "Click Unsubscribe at the bottom of any newsletter, or turn off Marketing emails in Account > "
        "Communication preferences; the change takes effect within 48 hours. You will still get service "
        "emails about your orders and devices.",
    ),
    (
        [
            "How do I turn on two-factor authentication?",
            "The 2FA code doesn't arrive on my new phone.",
            "How do I set up 2-step verification?",
        ],
        "Go to Account > Security > Two-factor authentication, choose an authenticator app or SMS, and save "
        "the 10 backup codes. If you change phone number, sign in with a backup code and update the number on "
        "the same page.",
    ),
    (
        ["How do I change my email address?", "I want to use a different email for my account."],
        "Go to Account > Personal details > Email, enter the new address and click the confirmation link we "
        "send to it within 24 hours. Your old address also gets a notice of the change, in case it wasn't "
        "you.",
    ),
    (
        [
            "I think my account has been hacked.",
            "Someone placed an order on my account.",
            "There was a login from another country.",
        ],
        "Reset your password straight away, choose Sign out of all devices under Account > Security, then "
        "contact us. We freeze your saved cards, check recent orders and cancel any placed by someone else "
        "before they are dispatched.",
    ),
    (
        ["My account is locked.", "It says too many sign-in attempts."],
        "After 5 wrong passwords the account is locked for 30 minutes. To unlock it at once, click the link "
        "in the 'Account locked' email we send you, or reset your password.",
    ),
    (
        ["How do I remove a saved card?", "How do I delete an old address from my profile?"],
        "Delete cards in Account > Wallet and addresses in Account > Addresses by tapping the bin icon next "
        "to them. A card linked to an active subscription can only be removed after you choose another card "
        "for that subscription.",
    ),
    (
        ["How do reward points work?", "My loyalty points disappeared.", "How do I use my Northwind Rewards points?"],
        "Northwind Rewards gives 1 point per £1 or €1 spent, and 100 points are worth £5 or €5 off at "
        "checkout. Points expire 12 months after your last order; your balance and history are in Account > "
        "Rewards.",
    ),
    (
        ["What is Northwind Plus?", "What do I get with the membership?", "How much does Northwind Plus cost?"],
        "Northwind Plus costs £4.99 a month and includes free express delivery, 30 days of DoorSight video "
        "history and 10% off spare parts and filters. Cancel any time in Account > Subscriptions; the "
        "benefits last until the end of the paid month.",
    ),
    # Business, contact and recycling
    (
        ["Do you have business accounts?", "Can I order in bulk for my office?", "Do you offer discounts for large orders?"],
        "Yes. Apply under Business > Open an account; after a credit check, businesses can pay by invoice "
        "within 30 days and get tiered discounts from 10 units of the same product. Landlords and hotels also "
        "get a dedicated account manager.",
    ),
    (
        ["How can I contact customer service?", "What is your phone number?", "When is your support team available?"],
        "Call 0808 157 0420 or use the chat in the app, Monday to Friday from 8 am to 8 pm and Saturday from "
        "9 am to 5 pm. Messages through the contact form are answered within 24 hours; we are closed on "
        "Sundays and bank holidays.",
    ),
    (
        ["Do you have a shop I can visit?", "Can I see the products in person?", "Can I collect my order in store?"],
        "We sell online only, but you can try our products at the showroom at 12 Tib Street, Manchester, open "
        "Thursday to Sunday from 10 am to 6 pm. Orders can't be collected or returned there.",
    ),
    (
        ["Can you take away my old appliance?", "How do I recycle my old kettle?", "Do you collect old electricals?"],
        "Yes. When you buy a new appliance, tick Recycle my old appliance at checkout and the driver takes "
        "away one old appliance of the same type for free. Under the WEEE take-back scheme you can also drop "
        "it at a participating recycling centre within 28 days.",
    ),
    (
        ["Is your packaging recyclable?", "Do you use plastic packaging?"],
        "All our packaging is cardboard and paper that can go in kerbside recycling, and we stopped using "
        "polystyrene in 2024. Small parts are packed in paper bags; the only plastic left is the film "
        "protecting display screens.",
    ),
]
PREFIXES = ["", "", "Hi, ", "Hello! ", "Quick question: ", "Please help. ", "Hey, "]


def make_faq() -> list[dict]:
    """Each phrasing once, with a greeting prefix drawn from PREFIXES (often none), shuffled.

    No exact duplicate can straddle train and test, and with 120 topics of 2 or 3 phrasings each,
    a held-out split can contain answers that never appear in the training rows.
    """
    rows = [{"question": RNG.choice(PREFIXES) + q, "answer": answer} for questions, answer in FAQ for q in questions]
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
