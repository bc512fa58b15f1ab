"""The whole studio in a real browser (Debian's chromium driven by Playwright), with a real worker:
choose a teacher folder, upload a broken file and then the sample tickets, distill, see the loss chart,
make an int8 variant, follow it in History, compare with a budget, export the int8 variant with the
teacher fall-back and check the downloaded zip.
Screenshots of every step go to test-artifacts/screenshots/."""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
SHOTS = ROOT / "test-artifacts" / "screenshots"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium); .ci/run installs it"
)


def watch_for_refusals(page) -> list[str]:
    """Everything the page was refused: a Content-Security-Policy violation in its console, or a request the
    server's guard answered 401/403/404/413 (a route the page needs but the guard does not know)."""
    troubles: list[str] = []
    page.on(
        "console",
        lambda msg: (
            troubles.append(f"console: {msg.text}") if "Content Security Policy" in msg.text or "Refused to" in msg.text else None
        ),
    )
    page.on(
        "response",
        lambda r: troubles.append(f"{r.status} {r.request.method} {r.url}") if r.status in (401, 403, 404, 413) else None,
    )
    return troubles


def open_studio(playwright, url: str):
    """Chromium at desktop size on the studio's page: (browser, page, what the page was refused)."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(60_000)
    troubles = watch_for_refusals(page)
    page.goto(url)
    return browser, page, troubles


@pytest.fixture
def studio(studio_home, tmp_path):
    """The app served on a free port and a worker process, both on a fresh studio home."""
    from studio.hosting import HostSettings
    from studio.ui.server import create_server, start_in_thread

    running = start_in_thread(*create_server(settings=HostSettings()))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLM_STUDIO_HOME": str(studio_home)}
    with open(tmp_path / "worker.log", "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "studio", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    yield running.url
    os.killpg(worker.pid, signal.SIGTERM)
    worker.wait(timeout=60)
    running.stop()


def test_the_whole_flow_in_a_browser(studio, tiny_bert, samples, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    data = tmp_path / "tickets.csv"
    data.write_text("\n".join((samples / "support_tickets.csv").read_text().splitlines()[:301]) + "\n")
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"PK\x03\x04" + b"\x00" * 64)

    with sync_playwright() as p:
        browser, page, troubles = open_studio(p, studio)

        def shot(name: str) -> None:
            page.screenshot(path=SHOTS / f"{name}.png", full_page=True)

        def open_step(tab: str, runs: str) -> None:
            """Go to a step and let its run list refresh (it does when focused): the newest run is picked."""
            page.get_by_role("tab", name=tab).click()
            page.get_by_label(runs).click()
            page.keyboard.press("Escape")

        expect(page.get_by_text("22.7 M parameters")).to_be_visible()
        page.get_by_label("A folder on this machine").check()
        page.get_by_label("Model folder").fill(str(tiny_bert))
        page.get_by_label("Model folder").press("Tab")
        expect(page.get_by_text("checked when the distillation starts")).to_be_visible()
        shot("1-teacher")

        page.get_by_role("tab", name="2. Data").click()
        upload = page.locator("#dataset-upload input[type=file]")
        upload.set_input_files(str(broken))
        expect(page.get_by_text("ZIP archive")).to_be_visible()
        shot("2a-data-broken-file")
        page.locator("#dataset-upload").get_by_role("button", name="Clear").click()  # the × on the refused file
        upload.set_input_files(str(data))
        expect(page.get_by_text("for sorting texts into labels (classification)")).to_be_visible()
        expect(page.get_by_text("Examples per label")).to_be_visible()
        expect(page.get_by_label("Prompt column")).to_be_hidden()  # a classifier's file: no prompts to choose
        shot("2b-data")

        page.get_by_role("tab", name="3. Distill").click()
        page.get_by_text("Advanced settings").click()  # in words, and only those that apply to a classifier
        expect(page.get_by_label("Weigh rare labels")).to_be_visible()
        expect(page.get_by_label("Teacher words kept per position (top k)")).to_be_hidden()
        page.get_by_text("Advanced settings").click()
        page.get_by_label("Fastest").check()
        start = page.get_by_role("button", name="Start distillation")
        expect(start).to_be_enabled()
        start.dblclick()  # a double click starts one job, and the page follows it
        expect(page.get_by_text(re.compile(r"Job 1 is (queued|running|done)"))).to_be_visible()
        page.reload()  # mid-training: the page opens where its user was, with the same choices
        expect(page.get_by_role("tab", name="3. Distill", selected=True)).to_be_visible()
        expect(page.get_by_label("Fastest")).to_be_checked()
        expect(page.get_by_text(re.compile(r"Job 1 is still running|Go on to step 4"))).to_be_visible()
        page.get_by_role("tab", name="1. Teacher").click()
        expect(page.get_by_label("Model folder")).to_have_value(str(tiny_bert))
        page.get_by_role("tab", name="2. Data").click()
        expect(page.get_by_text("Using tickets.csv, checked earlier")).to_be_visible()
        shot("2c-data-after-reload")
        page.get_by_role("tab", name="3. Distill").click()
        expect(page.get_by_text("Go on to step 4")).to_be_visible(timeout=240_000)
        expect(page.get_by_text("Training loss").first).to_be_visible()
        # the result card says what the stored scores say
        from storage import records
        from storage.config import open_storage
        from studio.outcome import outcome_lines

        storage = open_storage()
        with storage.db.session() as s:
            models = [m.with_scores() for m in records.run_models(s, records.local_user(storage.db), 1, made_from=False)]
        student = next(m for m in models if m["name"] == "student")
        card = page.locator("#distill-result")
        expect(card).to_contain_text(f"{student['accuracy'] * 100:.0f} % of the test texts right")
        expect(card).to_contain_text(outcome_lines(models)[-1].replace("**", ""))
        with storage.db.session() as s:
            assert s.query(records.Job).filter_by(kind="distill").count() == 1  # the double click: one job
        # the next run's time, before its Start: from this run's measured time
        expect(page.locator("#distill-estimate")).to_contain_text(re.compile(r"Time: about .+ on this machine \(your run 1 took"))
        shot("3-distill")

        page.get_by_role("button", name="Make it smaller (step 4)").click()  # the card's way on
        expect(page.get_by_role("tab", name="4. Compress", selected=True)).to_be_visible()
        # no click on the run list: it was filled when the run finished, the new run picked
        expect(page.get_by_text("Tick at least one method.")).to_be_visible()
        page.get_by_label("int8 — 4× smaller, runs on any CPU (ONNX Runtime)").check()
        page.get_by_role("button", name="Make variants").click()
        expect(page.get_by_text("Queued variant job")).to_be_visible()
        shot("4-compress")

        page.get_by_role("tab", name="History").click()
        page.get_by_text("int8 of job 1", exact=True).filter(visible=True).click()  # a click on its row opens the compress job
        expect(page.get_by_label("Job id")).to_have_value("2")
        expect(page.get_by_text("Status done")).to_be_visible(timeout=240_000)
        shot("h-history")
        page.get_by_role("tab", name="4. Compress").click()  # the variant's own card, in the stored numbers
        cards = page.locator("#variant-cards")
        expect(cards).to_contain_text(re.compile(r"int8 \(job 2\)\s*\d+ % of the test texts right"), timeout=30_000)
        expect(cards).to_contain_text("smaller")
        shot("4b-compress-card")

        open_step("5. Compare", "Distillation run")
        budget = page.get_by_label("Largest size you accept (MB; 0 = no limit)")
        budget.fill("50")
        budget.press("Enter")
        expect(page.get_by_text("Recommended:")).to_be_visible()
        expect(page.get_by_text("best trade-offs (Pareto front)").first).to_be_visible()
        quality = page.get_by_label(re.compile("Lowest quality you accept"))
        quality.fill("99")  # typed as a percentage, read as one; the advice is about quality
        quality.press("Enter")
        expect(page.get_by_text("your quality limit: 99%").first).to_be_visible()  # drawn at 99 %, not 9,900 %
        shot("5a-compare-quality-limit")
        quality.fill("0")
        quality.press("Enter")
        expect(page.get_by_text("Recommended:")).to_be_visible()
        page.locator('text="Try it: type a text, see what the model answers" >> visible=true').click()
        box = page.get_by_label("A text like the ones it will get").filter(visible=True)
        box.fill("I was charged twice for one order")
        page.get_by_role("button", name="Try", exact=True).filter(visible=True).click()
        expect(page.get_by_text(re.compile(r"student says .+, \d+% sure"))).to_be_visible(timeout=60_000)  # loads once
        expect(page.get_by_text(re.compile(r"It would answer alone|The teacher would be asked")).first).to_be_visible()
        expect(page.get_by_text(re.compile(r"The teacher says .+, \d+% sure"))).to_be_visible()
        shot("5-compare")

        open_step("6. Export", "Run to export from")
        from studio.charts import Budget, recommend

        with storage.db.session() as s:  # the recommended model comes first (none, for a tiny model of random words)
            models = [m.with_scores() for m in records.run_models(s, records.local_user(storage.db), 1)]
        best = recommend(models, Budget()).name
        first = "^student \\(the distilled model\\)$" if best is None else f"^{re.escape(best)}\\b.* — recommended$"
        expect(page.get_by_label("Model to export")).to_have_value(re.compile(first))
        expect(page.get_by_label("GGUF file (Llama-style text generators)")).to_be_hidden()  # a classifier's run
        page.get_by_label("Model to export").click()
        page.get_by_role("option", name=re.compile(r"^int8 \(quantized\)")).click()
        page.get_by_label("Add the teacher: small model first, teacher when unsure").check()
        page.get_by_role("button", name="Export (.zip)").click()
        link = page.locator("#export-download")
        expect(link).to_be_visible(timeout=240_000)
        expect(page.get_by_text("Small model first: the student answers")).to_be_visible()
        shot("6-export")
        with page.expect_download() as download:
            link.click()
        saved = tmp_path / download.value.suggested_filename
        download.value.save_as(saved)

        # step 7: serve the student, make a key, and call it with the line the page shows
        open_step("7. Deploy", "Run to serve from")
        page.get_by_label("Model to serve").click()
        page.get_by_role("option", name=re.compile(r"^student \(the distilled model\)")).click()
        page.get_by_label("Name programs call it by").fill("triage")
        page.get_by_role("button", name="Deploy", exact=True).click()
        expect(page.get_by_text("Serving triage")).to_be_visible()
        line = page.locator("code", has_text="/api/v1/models/triage/classify").first.inner_text()
        page.get_by_label("What the key is for").fill("helpdesk")
        page.get_by_role("button", name="Make a key").click()
        key = page.locator("code", has_text=re.compile(r"^slm-")).first.inner_text().strip()
        expect(page.get_by_role("cell", name="helpdesk")).to_be_visible()
        shot("7-deploy")
        words = shlex.split(line.replace("$SLM_STUDIO_KEY", key))  # the page's curl line, as a shell would read it
        assert words[0] == "curl" and words[-1].startswith(studio.rstrip("/"))
        header = words[words.index("-H") + 1].split(": ", 1)
        answer = httpx.post(words[-1], content=words[words.index("-d") + 1], headers=dict([header]), timeout=120)
        assert answer.status_code == 200 and answer.json()["label"] and "teacher_answered" in answer.json()

        page.get_by_role("tab", name="History").click()  # the export keeps its download there, its job no loss chart
        page.get_by_label("Job id").fill("1")
        page.get_by_label("Job id").press("Enter")
        expect(page.locator("#history-curve")).to_be_visible()
        page.get_by_text("export int8 of job 1", exact=True).filter(visible=True).click()
        expect(page.locator("#export-download")).to_have_count(2)  # Export's and History's
        expect(page.locator("#history-curve")).to_be_hidden()
        page.get_by_text("int8 of job 1", exact=True).filter(visible=True).click()
        expect(page.get_by_text("Job 2 — compress")).to_be_visible()
        page.get_by_role("button", name="Delete", exact=True).click()  # asks first, saying what goes
        expect(page.get_by_text("Delete job 2?")).to_be_visible()
        expect(page.get_by_text("cannot be undone")).to_be_visible()
        shot("h-history-delete")
        page.get_by_role("button", name="Yes, delete").click()
        expect(page.get_by_text("Deleted job(s) 2")).to_be_visible()
        browser.close()
    assert troubles == []

    with zipfile.ZipFile(saved) as zf:
        names = set(zf.namelist())
        top = saved.stem
        assert {
            f"{top}/README.md",
            f"{top}/predict.py",
            f"{top}/export.json",
            f"{top}/model/config.json",
            f"{top}/model/model.safetensors",
            f"{top}/onnx/model.onnx",
            f"{top}/teacher/config.json",
        } <= names
        card = zf.read(f"{top}/README.md").decode()
        zf.extractall(tmp_path / "unzipped")
    assert saved.name == "slm-studio-job1-int8.zip"
    assert "pipeline_tag: text-classification" in card and "int8" in card and "answers **" in card
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "unzipped" / top / "model")
    labels = json.loads((tmp_path / "unzipped" / top / "export.json").read_text())["labels"]
    assert sorted(model.config.id2label.values()) == labels and len(labels) == 7


def test_a_hosted_studio_in_a_browser(studio_home, samples, tmp_path):
    """Hosted: the login page, a wrong password, the studio after logging in (an upload checked, no request or
    script refused), and logging out from the page."""
    from playwright.sync_api import expect, sync_playwright

    from storage.config import open_storage
    from studio.accounts import add_user
    from studio.hosting import HostSettings
    from studio.ui.server import create_server, start_in_thread

    storage = open_storage()
    add_user(storage.db, "alice", "alice-secret-1")
    running = start_in_thread(*create_server(storage, HostSettings(auth="users")))
    data = tmp_path / "tickets.csv"
    data.write_text("\n".join((samples / "support_tickets.csv").read_text().splitlines()[:101]) + "\n")
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(60_000)
            troubles = watch_for_refusals(page)
            page.goto(running.url)
            expect(page).to_have_url(running.url + "login")
            page.get_by_label("User name").fill("alice")
            page.get_by_label("Password").fill("not-her-password")
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_role("alert")).to_have_text("Incorrect user name or password.")
            page.screenshot(path=SHOTS / "0-login-refused.png")
            page.get_by_label("User name").fill("alice")
            page.get_by_label("Password").fill("alice-secret-1")
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_text("Logged in as")).to_be_visible()
            expect(page.locator("#account")).to_contain_text("alice")
            page.get_by_role("tab", name="2. Data").click()
            page.locator("#dataset-upload input[type=file]").set_input_files(str(data))
            expect(page.get_by_text("for sorting texts into labels (classification)")).to_be_visible()
            page.screenshot(path=SHOTS / "0-hosted-data.png", full_page=True)
            troubles = [t for t in troubles if "/login" not in t]  # the wrong password's own 400 page
            assert troubles == []
            page.get_by_role("button", name="Log out").click()
            expect(page).to_have_url(running.url + "login")
            page.goto(running.url)
            expect(page).to_have_url(running.url + "login")  # the session ended on the server
            browser.close()
    finally:
        running.stop()


def test_every_step_is_one_tap_away_on_a_phone(studio):
    """At 390 px the tab bar has room for two steps; the step picker above it reaches all of them."""
    from playwright.sync_api import expect, sync_playwright

    headings = {
        "1. Teacher": "1. Choose a teacher",
        "2. Data": "2. Your data",
        "3. Distill": "3. Distill",
        "4. Compress": "4. Compress",
        "5. Compare": "5. Compare",
        "6. Export": "6. Export",
        "History": "History",
    }
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(studio)
        expect(page.get_by_text("22.7 M parameters")).to_be_visible()  # the app is up
        page.wait_for_timeout(2000)  # the page-open event answers: a tap before it can be lost under load
        for step, heading in headings.items():
            page.locator("#step-picker").get_by_label(step).check()
            expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
            expect(page.get_by_role("tab", name=step, selected=True)).to_be_visible()
            page.screenshot(path=SHOTS / f"m-phone-{step.split('.')[0].lower()}.png", full_page=True)
        wide = browser.new_page(viewport={"width": 1280, "height": 900})
        wide.goto(studio)
        expect(wide.locator("#step-picker")).to_be_hidden()  # wide screens have the whole tab bar
        browser.close()


def test_labelling_what_the_run_asks_starts_the_next_round_in_a_browser(studio, tiny_bert, samples, tmp_path):
    """Few labels, many texts: after a run the page asks about 20 texts; three are labelled in place, one click
    starts round 2, and when it is done the chart shows both rounds."""
    import csv

    from playwright.sync_api import expect, sync_playwright

    from tiny_models import tickets_few_labels

    truth = {r["text"]: r["category"] for r in csv.DictReader((samples / "support_tickets.csv").open(encoding="utf-8"))}
    data = tickets_few_labels(samples, tmp_path / "few.csv", 200, 80)
    with sync_playwright() as p:
        browser, page, troubles = open_studio(p, studio)
        page.get_by_label("A folder on this machine").check()
        page.get_by_label("Model folder").fill(str(tiny_bert))
        page.get_by_label("Model folder").press("Tab")
        page.get_by_role("tab", name="2. Data").click()
        page.locator("#dataset-upload input[type=file]").set_input_files(str(data))
        expect(page.get_by_text("texts without a label").first).to_be_visible()
        page.get_by_role("tab", name="3. Distill").click()
        page.get_by_label("Fastest").check()
        page.get_by_text("Advanced settings").click()  # a few steps: the rounds, not the training, are tested here
        page.get_by_label("Training steps, at least").fill("0")
        page.get_by_label("Training steps, at most").fill("4")
        page.get_by_label("Training steps, at most").press("Tab")
        page.get_by_role("button", name="Start distillation").click()
        box = page.locator("#label-box")
        expect(box.get_by_text("Label what the studio is unsure of")).to_be_visible(timeout=240_000)
        questions = page.locator(".label-question").filter(visible=True)
        expect(questions).to_have_count(20)
        for i in range(3):
            question = questions.nth(i)
            text = next(t for t in truth if question.get_by_text(t[:40], exact=False).count())
            question.get_by_label(truth[text], exact=True).check()
        page.screenshot(path=SHOTS / "3c-label-what-it-asks.png", full_page=True)
        box.get_by_role("button", name="Add my labels and train again").click()
        expect(page.get_by_text(re.compile(r"Round started as job 2 with your 3 new label"))).to_be_visible()
        expect(box.get_by_text("You have labelled 3 texts here so far")).to_be_visible(timeout=240_000)  # round 2 asks
        chart = page.locator("#rounds-chart")
        expect(chart.get_by_text("after each round")).to_be_visible()
        expect(chart.locator(".scatterlayer .trace").first.locator(".point")).to_have_count(2)  # the student, both rounds
        page.screenshot(path=SHOTS / "3d-rounds-chart.png", full_page=True)
        assert troubles == []
        browser.close()
