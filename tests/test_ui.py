"""The browser studio's steps: their handlers on real files and a real database, and the page served."""

import json
import os
import urllib.error
import urllib.request

import pytest

from storage.config import open_storage
from studio.hosting import HostSettings
from studio.ui.context import UIContext
from studio.ui.data_step import check_file
from studio.ui.history_step import history_rows, job_detail
from studio.ui.server import create_server, start_in_thread
from studio.ui.teacher_step import SOURCES, describe


@pytest.fixture
def ctx():
    return UIContext(open_storage())


def test_teacher_choices_say_what_they_are(tmp_path, tiny_bert):
    text, spec = describe(SOURCES[0], "minilm-l6", "", "")
    assert spec == "minilm-l6" and "22.7 M parameters" in text and "Licence" in text
    text, spec = describe(SOURCES[1], None, str(tmp_path), "")
    assert spec is None and "config.json" in text
    assert describe(SOURCES[1], None, str(tiny_bert), "")[1] == str(tiny_bert)
    text, spec = describe(SOURCES[2], None, "", "org/model")
    assert spec is None and "offline" in text  # tests run with HF_HUB_OFFLINE=1


def test_data_step_checks_stores_and_explains(ctx, samples, tmp_path):
    me = ctx.viewer()
    checked = check_file(ctx, me, str(samples / "support_tickets.csv"))
    assert checked.dataset_id and "3,000 of 3,000 rows" in checked.report and "classification" in checked.report
    assert {"text", "category"} <= set(checked.headers) and len(checked.preview) == 10
    assert "text = `text`" in checked.report and "label = `category`" in checked.report
    assert list(checked.balance.data[0].x)[0] in {
        "billing",
        "shipping",
        "technical issue",
        "account access",
        "returns/refunds",
        "product question",
        "cancellation",
    }
    broken = tmp_path / "tickets.csv"
    broken.write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    refused = check_file(ctx, me, str(broken))
    assert refused.dataset_id is None and "ZIP archive" in refused.report and "Traceback" not in refused.report
    assert check_file(ctx, me, None).dataset_id is None


def test_history_lists_and_explains_jobs(ctx):
    from storage import jobs as job_rows

    me = ctx.viewer()
    job = job_rows.submit(ctx.storage.db, me.user_id, "distill", {}, title="tickets")
    rows = history_rows(ctx, me)
    assert rows[0][:3] == [job.id, "distill", "queued"]
    text, figure, can, link = job_detail(ctx, me, job.id)
    assert "Status **queued**" in text and figure is None and link == ""
    assert can == {"cancel": True, "resume": False, "delete": False}
    text, _, can, _ = job_detail(ctx, me, 999)
    assert "There is no job 999" in text and not any(can.values())
    # Delete first says what goes: the job, the jobs made from it, their files
    from studio.ui.history_step import what_delete_removes

    child = job_rows.submit(ctx.storage.db, me.user_id, "compress", {}, parent_id=job.id, title="int8")
    asked = what_delete_removes(ctx, me, job.id)
    assert f"Delete job {job.id} and the 1 job(s) made from it ({child.id})?" in asked and "cannot be undone" in asked
    assert "There is no job 999" in what_delete_removes(ctx, me, 999)


def test_every_tab_builds_and_the_page_needs_no_network(ctx):
    api, app = create_server(ctx.storage, HostSettings())
    assert app.teacher.chosen.value == "minilm-l6" and app.data.dataset_id.value is None
    running = start_in_thread(api, app)
    try:
        page = urllib.request.urlopen(running.url, timeout=30).read().decode()
        assert "SLM Studio" in page
        for outside in ("fonts.googleapis.com", "fonts.gstatic.com", "cdn.jsdelivr.net", "unpkg.com"):
            assert outside not in page
        health = json.loads(urllib.request.urlopen(running.url + "healthz", timeout=30).read())
        assert health == {"status": "ok", "database": "ok", "artifacts": "ok", "auth": "none"}
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(running.url + "download/1", timeout=30)
        assert missing.value.code == 404
    finally:
        running.stop()


def test_health_says_what_is_wrong(ctx):
    api, app = create_server(ctx.storage, HostSettings())
    running = start_in_thread(api, app)
    try:
        ctx.storage.store.root.chmod(0o500)
        if os.access(ctx.storage.store.root, os.W_OK):  # root ignores permissions: take the folder away instead
            ctx.storage.store.root.rename(ctx.storage.store.root.with_name("moved"))
        with pytest.raises(urllib.error.HTTPError) as sick:
            urllib.request.urlopen(running.url + "healthz", timeout=30)
        assert sick.value.code == 503 and "not writable" in json.loads(sick.value.read())["artifacts"]
    finally:
        running.stop()


def test_export_step_explains_bad_choices(ctx):
    from studio.ui.export_step import export_view, exportable_models, start_export

    me = ctx.viewer()
    assert start_export(ctx, me, None, "student", True, True, False, "")[1].startswith("> ⚠️ Choose a finished")
    job, said = start_export(ctx, me, 1, "student", True, True, True, "high")
    assert job is None and "'high' is not a number" in said
    job, said = start_export(ctx, me, 999, "student", True, True, True, "")
    assert job is None and "There is no job 999" in said
    assert exportable_models(ctx, me, None) == []
    assert "There is no job 5" in export_view(ctx, me, 5)[0]


def test_export_offers_the_recommended_model_first_in_plain_names(ctx):
    from storage import jobs as job_rows
    from storage import records
    from studio.ui.export_step import exportable_models

    me = ctx.viewer()
    run = job_rows.submit(ctx.storage.db, me.user_id, "distill", {}, title="run").id
    made = {
        "teacher": ("teacher", "", {"macro_f1": 0.90, "size_bytes": 90e6, "latency_ms": 9.0}),
        "student": ("student", "", {"macro_f1": 0.85, "size_bytes": 20e6, "latency_ms": 3.0}),
        "tfidf-baseline": ("baseline", "", {"macro_f1": 0.70, "size_bytes": 1e6, "latency_ms": 0.1}),
        "int8": ("quantized", "int8", {"macro_f1": 0.84, "size_bytes": 5e6, "latency_ms": 1.0}),
        "slim": ("pruned", "prune-heads+heal", {"macro_f1": 0.80, "size_bytes": 15e6, "latency_ms": 2.0}),
    }
    for name, (role, method, scores) in made.items():
        variant = records.put_variant(ctx.storage.db, run, name=name, role=role, method=method)
        records.add_scores(ctx.storage.db, run, variant, scores)
    offered = exportable_models(ctx, me, run)
    assert offered[0] == ("teacher — recommended", "teacher")  # no budget: the best quality
    assert ("int8 (quantized)", "int8") in offered and ("slim (pruned: prune-heads+heal)", "slim") in offered
    assert ("tfidf-baseline (baseline)", "tfidf-baseline") in offered


def test_steps_never_show_another_users_run(ctx):
    from storage import jobs as job_rows
    from storage.errors import NotFoundError
    from studio.accounts import add_user
    from studio.ui.compare_step import compare_rows
    from studio.ui.export_step import exportable_models

    alice, bob = add_user(ctx.storage.db, "alice", "alice-secret-1"), add_user(ctx.storage.db, "bob", "bob-secret-22")
    job = job_rows.submit(ctx.storage.db, alice.user_id, "distill", {}, title="alice's run")
    assert exportable_models(ctx, alice, job.id)[0][1] == "student"
    for look in (compare_rows, exportable_models):
        with pytest.raises(NotFoundError, match=f"There is no job {job.id}"):
            look(ctx, bob, job.id)
    assert all(str(job.id) != str(row[0]) for row in history_rows(ctx, bob))


def test_model_folders_stay_private(ctx, monkeypatch, tiny_bert, tmp_path):
    from storage import jobs as job_rows
    from studio.accounts import add_user, check_login, disable_user, models_dir
    from studio.errors import ConfigError
    from studio.jobs.service import check_model_folder_is_theirs

    alice, bob = add_user(ctx.storage.db, "alice", "alice-secret-1"), add_user(ctx.storage.db, "bob", "bob-secret-22")
    job = job_rows.submit(ctx.storage.db, alice.user_id, "distill", {}, title="alice's run")
    student = ctx.storage.store.resolve(job.folder) / "student"
    student.mkdir(parents=True)
    check_model_folder_is_theirs(ctx.storage, alice, str(student))  # her own run's model: fine
    with pytest.raises(Exception, match=f"There is no job {job.id}"):
        check_model_folder_is_theirs(ctx.storage, bob, str(student))
    (ctx.storage.store.root / "datasets").mkdir(exist_ok=True)
    with pytest.raises(ConfigError, match="inside the studio's own store"):
        check_model_folder_is_theirs(ctx.storage, bob, str(ctx.storage.store.root / "datasets"))
    check_model_folder_is_theirs(ctx.storage, bob, str(tiny_bert))  # a laptop may use any folder
    monkeypatch.setenv("SLM_STUDIO_AUTH", "users")
    with pytest.raises(ConfigError, match="shared models folder") as there:
        check_model_folder_is_theirs(ctx.storage, bob, str(tiny_bert))
    with pytest.raises(ConfigError) as missing:  # a folder that does not exist: the very same answer
        check_model_folder_is_theirs(ctx.storage, bob, str(tiny_bert) + "-nowhere")
    assert str(there.value) == str(missing.value)
    check_model_folder_is_theirs(ctx.storage, bob, "HuggingFaceTB/SmolLM2-135M")  # a hub id is still a hub id
    shared = models_dir() / "tiny"
    shared.mkdir(parents=True)
    check_model_folder_is_theirs(ctx.storage, bob, str(shared))
    text, spec = describe(SOURCES[1], None, "/etc", "", only_under=models_dir())
    assert spec is None and "shared models folder" in text and "config.json" not in text

    assert check_login(ctx.storage.db, "bob", "bob-secret-22") == bob
    disable_user(ctx.storage.db, "bob")
    assert check_login(ctx.storage.db, "bob", "bob-secret-22") is None
    assert check_login(ctx.storage.db, "alice", "x" * 5000) is None


def test_an_unexpected_error_is_logged_under_the_reference_the_user_sees(caplog):
    import re

    from studio.ui.context import message_of

    try:
        {}["missing"]
    except KeyError as err:
        said = message_of(err)
    reference = re.search(r"reference ([0-9a-f]{8})", said).group(1)
    assert "KeyError" in said and "administrator" in said
    logged = next(r for r in caplog.records if reference in r.getMessage())
    assert logged.exc_info and logged.exc_info[0] is KeyError  # the traceback is in the server log


def test_a_full_quota_starts_no_job_and_stores_no_dataset(ctx, monkeypatch, samples, tmp_path):
    from studio.accounts import add_user
    from studio.errors import QuotaError
    from studio.jobs import service

    alice = add_user(ctx.storage.db, "alice", "alice-secret-1")
    big = tmp_path / "big.csv"
    big.write_text("text,label\n" + "".join(f"parcel {i} is late again,{'ab'[i % 2]}\n" for i in range(60_000)))
    first = service.add_dataset(ctx.storage, alice, big)  # no quota on a laptop
    monkeypatch.setenv("SLM_STUDIO_AUTH", "users")
    monkeypatch.setenv("SLM_STUDIO_USER_QUOTA_MB", "1")  # that dataset alone takes more
    for attempt in (
        lambda: service.add_dataset(ctx.storage, alice, samples / "shop_faq.jsonl"),
        lambda: service.submit(ctx.storage, alice, "distill", {"dataset_id": first}, enqueue=False),
    ):
        with pytest.raises(QuotaError, match=r"take \d+ MB, your whole storage quota \(1 MB\).*History"):
            attempt()
    with ctx.storage.db.session() as s:
        from storage import records

        assert [d.id for d in records.list_datasets(s, alice)] == [first]
        assert s.query(records.Job).count() == 0


def test_uploads_stop_while_the_disk_is_nearly_full(ctx):
    import requests

    running = start_in_thread(*create_server(ctx.storage, HostSettings(min_free_mb=10**9)))  # 1 PB must stay free
    try:
        answer = requests.post(running.url + "gradio_api/upload", files={"files": ("t.csv", b"text,label\n")}, timeout=30)
        assert answer.status_code == 507 and "is nearly full" in answer.json()["detail"]
    finally:
        running.stop()


def test_distill_step_takes_only_catalog_students_and_says_what_a_run_chose(ctx, samples):
    from storage import records
    from studio.jobs import service
    from studio.ui.compare_step import closer_look, warnings_text
    from studio.ui.distill_step import LAYERS_OF_TEACHER, preset_values, start_job

    me = records.local_user(ctx.storage.db)
    dataset = service.add_dataset(ctx.storage, me, samples / "support_tickets.csv")
    values = {**preset_values("classification", "Balanced"), "student": "/etc/models/anything"}
    job_id, said = start_job(ctx, me, "minilm-l6", dataset, values)
    assert job_id is None and "is not a student this studio offers" in said
    job_id, _ = start_job(ctx, me, "minilm-l6", dataset, {**values, "student": LAYERS_OF_TEACHER})
    with ctx.storage.db.session() as s:
        config = s.get(records.Job, job_id).config["distill"]
    assert config["student"] is None and config["teacher_learning_rate"] == 0.0 and config["min_steps"] == 250
    # a second Start while the first job waits (a double click, a second tab) starts nothing and says why
    again, said = start_job(ctx, me, "minilm-l6", dataset, {**values, "student": LAYERS_OF_TEACHER})
    assert again is None and f"Job {job_id} is still running" in said
    with ctx.storage.db.session() as s:
        assert [j.id for j in s.query(records.Job).filter_by(kind="distill")] == [job_id]

    report = {
        "labels": ["a", "b"],
        "models": [
            {
                "name": "student",
                "confusion": [[3, 1], [0, 2]],
                "warnings": ["does not beat the TF-IDF baseline"],
                "per_class": {
                    "a": {"precision": 1.0, "recall": 0.75, "f1": 0.857, "support": 4},
                    "b": {"precision": 0.667, "recall": 1.0, "f1": 0.8, "support": 2},
                },
            }
        ],
    }
    assert "**student** does not beat the TF-IDF baseline" in warnings_text(report)
    figure, rows = closer_look(report, "student")
    assert rows[0] == ["a", 1.0, 0.75, 0.857, 4] and list(figure.data[0].x) == ["a", "b"]
    assert closer_look(report, "nobody") == (None, [])


def test_start_says_which_step_is_really_missing():
    from studio.ui.distill_step import start_problem

    assert start_problem("minilm-l6", None) == "Check a dataset in step 2 first."
    assert "step 1" in start_problem(None, 4) and "step 2" not in start_problem(None, 4)
    assert "step 1" in start_problem(None, None) and "step 2" in start_problem(None, None)
    assert start_problem("minilm-l6", 4) is None
    assert "Job 7 is still running" in start_problem("minilm-l6", 4, running=7)


def test_the_wizard_opens_where_its_user_left_it(ctx, samples, tiny_bert):
    from storage import records
    from storage.wizard import remember
    from studio.jobs import service
    from studio.ui.teacher_step import SOURCES
    from studio.ui.wizard import place_of, teacher_controls

    me = records.local_user(ctx.storage.db)
    other = records.create_user(ctx.storage.db, "other", None)
    dataset = service.add_dataset(ctx.storage, me, samples / "support_tickets.csv")
    remember(ctx.storage.db, me, teacher=str(tiny_bert), dataset_id=dataset, preset="Fastest")
    place = place_of(ctx, me)
    assert (place.teacher, place.dataset_id, place.preset) == (str(tiny_bert), dataset, "Fastest")
    assert (
        "Using **support_tickets.csv**, checked earlier" in place.dataset_words and "3,000 of 3,000 rows" in place.dataset_words
    )
    assert teacher_controls(place.teacher)[:1] == (SOURCES[1],) and teacher_controls(place.teacher)[2] == str(tiny_bert)
    assert teacher_controls("minilm-l6")[:2] == (SOURCES[0], "minilm-l6")
    remember(ctx.storage.db, other, dataset_id=dataset, preset="Nonsense")  # someone else's dataset id
    assert place_of(ctx, other) == type(place)()  # is not theirs to open; an unknown preset is dropped
    records.delete_dataset(ctx.storage.db, ctx.storage.store, me, dataset)
    assert place_of(ctx, me).dataset_id is None


def test_compare_speaks_in_the_units_people_type_and_read():
    from studio.ui.compare_step import COLUMNS, quality_floor, table_rows

    models = [
        {"name": "teacher", "status": "ok", "macro_f1": 0.9012, "accuracy": 0.91, "size_bytes": 90.9e6, "latency_ms": 5.912},
        {"name": "int8", "status": "ok", "macro_f1": 0.8967, "accuracy": 0.9, "size_bytes": 7.24e6, "params": 5.2e6},
    ]
    teacher, int8 = (dict(zip([c for c, _ in COLUMNS], r)) for r in table_rows(models, recommended="int8"))
    assert (teacher["quality"], teacher["accuracy"], teacher["size_bytes"], teacher["latency_ms"]) == (
        "90.1%",
        "91.0%",
        90.9,
        5.91,
    )
    assert int8["name"] == "★ int8 (recommended)" and int8["params"] == "5.2 M" and int8["latency_ms"] == ""
    assert quality_floor(85, "macro_f1") == quality_floor(0.85, "macro_f1") == 0.85  # typed as % or as a share
    assert quality_floor(0, "macro_f1") is None and quality_floor(40, "perplexity") == 40


def test_progress_says_what_happens_how_long_it_took_and_about_how_long_is_left():
    from datetime import UTC, datetime, timedelta
    from types import SimpleNamespace

    from studio.jobs.reporter import phase_words
    from studio.progress import Progress
    from studio.ui.distill_step import progress_bar

    assert phase_words(Progress("student", 2, 3, 10, 50)) == "the student learns from the teacher: step 60 of 150"
    started = datetime.now(UTC) - timedelta(seconds=120)
    running = SimpleNamespace(status="running", started_at=started, finished_at=None)
    bar = progress_bar(0.25, "the student learns from the teacher: step 60 of 150", running)
    assert "25% — the student learns" in bar and "2 min 0" in bar and "about 6 min 0" in bar and "left" in bar
    early = progress_bar(0.05, "the teacher reads your texts once", running)
    assert "so far" in early and "left" not in early  # too early to tell
    done = SimpleNamespace(status="done", started_at=started, finished_at=started + timedelta(seconds=75))
    assert "took 1 min 15 s" in progress_bar(1.0, "finished", done)


def test_a_method_ticked_again_gets_a_free_name_not_a_dead_end(ctx):
    from storage import jobs as job_rows
    from storage import records
    from studio.jobs import service
    from studio.ui.compress_step import start_compress

    me = ctx.viewer()
    run = job_rows.submit(ctx.storage.db, me.user_id, "distill", {}, title="run").id
    with ctx.storage.db.session() as s:
        s.get(records.Job, run).status = "done"
    records.put_variant(ctx.storage.db, run, name="int8", role="quantized", method="int8")
    assert service.free_name(ctx.storage, me, run, "int8") == "int8-2"
    assert service.free_name(ctx.storage, me, run, "nf4") == "nf4"
    said = start_compress(ctx, me, run, ["int8 — 4× smaller, runs on any CPU (ONNX Runtime)"])
    assert said.startswith("Queued variant job(s)")
    with ctx.storage.db.session() as s:
        assert s.get(records.Job, run + 1).config["recipes"] == [["int8-2", "int8"]]
    assert service.free_name(ctx.storage, me, run, "int8") == "int8-3"  # the queued job's name is taken too


def test_start_says_how_long_a_run_takes_from_measured_times(ctx, samples):
    """Before Start: nothing measured, nothing said; a measured teacher step gives an estimate at the length the
    run will fit to the data; a finished run of this user with the same teacher gives the estimate, scaled by the
    steps the new run plans."""
    from datetime import timedelta

    from storage import jobs as job_rows
    from storage import records
    from studio.estimate import fitted_length, minutes, training_work
    from studio.jobs import service
    from studio.teacher_cost import Cost, _remember, machine
    from studio.ui.distill_step import DistillConfig, preset_values, time_estimate

    me = records.local_user(ctx.storage.db)
    dataset = service.add_dataset(ctx.storage, me, samples / "support_tickets.csv")
    with ctx.storage.db.session() as s:
        row = records.get_dataset(s, me, dataset)
        texts, rows, folder = row.report["split_sizes"]["train"], row.rows, ctx.storage.store.resolve(row.path)
    fastest = preset_values("classification", "Fastest")
    assert time_estimate(ctx, me, "minilm-l6", dataset, fastest) == ""  # nothing measured yet
    assert time_estimate(ctx, me, "minilm-l6", None, fastest) == ""

    _remember(Cost("minilm-l6", "classification", 0.5, 0.1, False, 16, 128, machine(), "today"))
    config = DistillConfig.from_dict({**fastest, "teacher": "minilm-l6"})
    length = fitted_length("minilm-l6", str(folder), tuple(row.report["label_counts"]))
    assert 32 <= length < 128  # support tickets are short: the run reads fewer tokens than the measured step
    seconds = (0.5 * training_work(config, "classification", texts) + 0.1 / 16 * 2 * rows) * length / 128
    said = time_estimate(ctx, me, "minilm-l6", dataset, fastest)
    assert said.startswith(f"**Time:** up to about {minutes(seconds)} on this machine (often less: every planned step")
    assert "0.50 s a step" in said

    # a finished run: 420 s for these texts with the Fastest preset
    job = job_rows.submit(
        ctx.storage.db, me.user_id, "distill", {"dataset_id": dataset, "distill": config.to_dict()}, dataset_id=dataset
    )
    assert job_rows.claim(ctx.storage.db, job.id, "w")
    job_rows.finish(ctx.storage.db, job.id, "done")
    with ctx.storage.db.session() as s:
        row = s.get(records.Job, job.id)
        row.finished_at = row.started_at + timedelta(seconds=420)
    said = time_estimate(ctx, me, "minilm-l6", dataset, fastest)
    assert said == f"**Time:** about 7 min on this machine (your run {job.id} took 7 min for {texts:,} training texts)."
    # Best quality trains longer: the same run's time, scaled by the steps it plans
    best = preset_values("classification", "Best quality")
    longer = training_work(DistillConfig.from_dict({**best, "teacher": "minilm-l6"}), "classification", texts)
    expected = minutes(420 * longer / training_work(config, "classification", texts))
    assert time_estimate(ctx, me, "minilm-l6", dataset, best).startswith(f"**Time:** about {expected} ")
    assert expected != "7 min"
    # another teacher has no run yet and no measured step
    assert time_estimate(ctx, me, "distilgpt2", dataset, fastest) == ""
    # the same teacher asked, not trained: the training run says nothing about it
    assert time_estimate(ctx, me, "minilm-l6", dataset, {**fastest, "teacher_training": "ask"}) == ""
    # settings a user is still typing give no estimate (Start explains them), never an error box
    assert time_estimate(ctx, me, "minilm-l6", dataset, {**fastest, "batch_size": -3}) == ""


def test_each_variant_gets_its_card_when_its_job_is_done(ctx):
    """Compress: a card per variant job of the run: waiting, under way, failed with its reason, or what the variant
    came to beside the teacher, in the stored numbers; the page polls only while one is still being made."""
    from storage import jobs as job_rows
    from storage import records
    from studio.ui.compress_step import variant_cards

    me = ctx.viewer()
    db = ctx.storage.db
    run = job_rows.submit(db, me.user_id, "distill", {}, title="run").id
    for name, scores in {
        "teacher": {"accuracy": 0.90, "macro_f1": 0.90, "size_bytes": 90e6, "latency_ms": 9.0},
        "student": {"accuracy": 0.88, "macro_f1": 0.87, "size_bytes": 20e6, "latency_ms": 3.0},
    }.items():
        records.add_scores(db, run, records.put_variant(db, run, name=name, role=name), scores)
    assert variant_cards(ctx, me, run) == ("", False)
    done = job_rows.submit(db, me.user_id, "compress", {}, title="int8 of job 1", parent_id=run).id
    waiting = job_rows.submit(db, me.user_id, "compress", {}, title="bf16 of job 1", parent_id=run).id
    assert job_rows.claim(db, done, "w")
    cards, pending = variant_cards(ctx, me, run)
    assert pending and f"(job {done}): 0% — starting" in cards and f"(job {waiting}): waiting for the worker" in cards
    scores = {"accuracy": 0.874, "macro_f1": 0.86, "size_bytes": 5e6, "latency_ms": 1.5}
    records.add_scores(db, done, records.put_variant(db, done, name="int8", role="quantized", method="int8"), scores)
    job_rows.finish(db, done, "done")
    assert job_rows.claim(db, waiting, "w")
    job_rows.finish(db, waiting, "failed", error="bfloat16 needs a newer CPU")
    cards, pending = variant_cards(ctx, me, run)
    assert not pending
    assert f"**int8** (job {done})\n- **87 % of the test texts right**, 3 points below the teacher (90 %)." in cards
    assert "**18.0× smaller** (5.0 MB, teacher 90.0 MB); **6.0× faster** per text" in cards
    assert "failed" in cards and "bfloat16 needs a newer CPU" in cards
    other = records.create_user(db, "someone-else", None)
    with pytest.raises(Exception, match="no job"):
        variant_cards.__wrapped__(ctx, other, run)  # another user's run: nothing of it


def test_the_data_step_counts_texts_without_a_label(ctx, samples, tmp_path):
    from storage import records
    from tiny_models import tickets_few_labels

    checked = check_file(ctx, ctx.viewer(), str(tickets_few_labels(samples, tmp_path / "few.csv", 600, 200)))
    assert checked.dataset_id and "**200 of 600 rows are ready**" in checked.report
    assert "texts without a label**: the teacher labels them" in checked.report
    more = tmp_path / "more.txt"
    more.write_text("where is my parcel\nmy card was charged twice\n")
    both = check_file(ctx, ctx.viewer(), str(tmp_path / "few.csv"), unlabelled_path=str(more))
    assert both.dataset_id != checked.dataset_id  # the same main file with a second file is another dataset
    assert "texts without a label** (with those of your file more.txt)" in both.report
    with ctx.storage.db.session() as s:
        counts = [records.get_dataset(s, ctx.viewer(), d).report["unlabelled"] for d in (checked.dataset_id, both.dataset_id)]
    assert counts[1] == counts[0] + 2


def test_a_server_the_user_runs_is_a_teacher_that_is_asked(monkeypatch):
    from studio.ui.distill_step import distill_config
    from studio.ui.wizard import teacher_controls

    assert describe(SOURCES[3], None, "", "", server="localhost:8080", served="qwen")[1] is None  # no scheme: not an address
    text, spec = describe(SOURCES[3], None, "", "", server="http://127.0.0.1:8080/v1/", served="qwen2.5-1.5b-instruct")
    assert spec == "http://127.0.0.1:8080/v1#qwen2.5-1.5b-instruct" and "Your texts are sent to that address" in text
    config = distill_config(spec, {})
    assert (config.teacher, config.teacher_endpoint, config.teacher_training) == (
        "qwen2.5-1.5b-instruct",
        "http://127.0.0.1:8080/v1",
        "ask",
    )
    assert teacher_controls(spec)[0] == SOURCES[3] and teacher_controls(spec)[4:] == (
        "http://127.0.0.1:8080/v1",
        "qwen2.5-1.5b-instruct",
    )
    monkeypatch.setenv("SLM_STUDIO_AUTH", "users")  # hosted: only the servers the administrator lists
    text, spec = describe(SOURCES[3], None, "", "", server="http://127.0.0.1:8080/v1", served="qwen")
    assert spec is None and "does not send your texts to http://127.0.0.1:8080/v1" in text


def test_the_distill_step_says_where_start_runs_and_in_how_many_processes(ctx):
    from storage import workers as worker_rows
    from studio.ui.distill_step import runs_on

    assert "no worker is running" in runs_on(ctx, {"processes": 0})
    worker_rows.register(ctx.storage.db, "a#1:10.1", worker_rows.Capacity("box-a", 2, 24 * 2**30, 0), ["cpu"], 1)
    worker_rows.register(
        ctx.storage.db, "b#1:11.1", worker_rows.Capacity("box-b", 16, 128 * 2**30, 2, "NVIDIA H100"), ["gpu", "big"], 2
    )
    said = runs_on(ctx, {"processes": 0})
    assert "box-a (2 cores, 24 GB, no GPU, tags cpu)" in said
    assert "box-b (16 cores, 128 GB, 2 GPUs (NVIDIA H100), tags big, gpu)" in said
    assert "Auto: one per GPU" in said
    assert "rarely faster" not in runs_on(ctx, {"processes": 2})  # a machine with GPUs is among them
    worker_rows.unregister(ctx.storage.db, "b#1:11.1")
    assert "2, each training on its part of every batch (on CPUs the processes share" in runs_on(ctx, {"processes": 2})


def test_the_distill_step_can_ask_for_a_worker_with_a_tag(ctx, samples):
    from storage import records
    from storage import workers as worker_rows
    from studio.jobs import service
    from studio.ui.distill_step import ANY_WORKER, LAYERS_OF_TEACHER, preset_values, run_on_choices, start_job

    worker_rows.register(ctx.storage.db, "b#1:11.1", worker_rows.Capacity("box-b", 16, 2**36, 2), ["gpu", "big"], 1)
    assert run_on_choices(ctx) == [ANY_WORKER, "big", "gpu"]
    me = records.local_user(ctx.storage.db)
    dataset = service.add_dataset(ctx.storage, me, samples / "support_tickets.csv")
    values = {**preset_values("classification", "Fastest"), "student": LAYERS_OF_TEACHER}
    refused, said = start_job(ctx, me, "minilm-l6", dataset, values, "GPU box!")
    assert refused is None and "is not a worker tag" in said
    job_id, _ = start_job(ctx, me, "minilm-l6", dataset, values, "gpu")
    with ctx.storage.db.session() as s:
        assert s.get(records.Job, job_id).needs == ["gpu"]
