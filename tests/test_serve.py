"""Serving (studio/serve): a served model answers real clients over HTTP: plain HTTP for classifiers, the `openai`
package for text generators (streaming too); keys are enforced (another user's key finds nothing, a revoked key is
refused); overload is answered 429 and nothing breaks; the hybrid's teacher answers exactly the texts the served
model is less sure of than the threshold."""

from __future__ import annotations

import concurrent.futures
import shutil
import threading
import time

import httpx
import openai
import pytest
import torch
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from storage import jobs as job_rows
from storage import records, serving
from storage.config import open_storage
from studio.jobs import service
from studio.models import load_for_task, load_tokenizer
from studio.run import RunPaths
from studio.serve import engine
from studio.serve.api import create_serving_app
from studio.serve.snippets import curl_line, python_snippet
from studio.teacher import resolve_source

TICKETS = [
    "I was charged twice for my order",
    "The app crashes when I open settings",
    "How do I change my password?",
    "My parcel never arrived",
    "Please cancel my subscription",
    "the invoice amount is wrong",
    "login page shows an error",
    "can I get a refund for the broken item",
    "where is my delivery",
    "the screen stays black after the update",
    "hello",
    "thanks for the help",
]


def finished_run(storage, viewer, run_dir) -> int:
    """A distillation recorded as done, its folder the given run's copy."""
    job = job_rows.submit(storage.db, viewer.user_id, "distill", {"dataset_id": 0, "distill": {}})
    assert job_rows.claim(storage.db, job.id, "test")
    job_rows.finish(storage.db, job.id, "done")
    shutil.copytree(run_dir, storage.store.resolve(job.folder))
    return job.id


class Server:
    def __init__(self, storage, hosted: bool, batching: bool = True) -> None:
        self.app, self.serving = create_serving_app(storage, hosted, batching=batching)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def team(cls_run, lm_run):
    """A hosted studio's records: alice serves a classifier and a text generator; bob has a key of his own."""
    storage = open_storage()
    alice = records.create_user(storage.db, "alice", "x-hash")
    bob = records.create_user(storage.db, "bob", "y-hash")
    runs = {"cls": finished_run(storage, alice, cls_run), "lm": finished_run(storage, alice, lm_run)}
    keys = {"alice": serving.make_key(storage.db, alice, "helpdesk").key, "bob": serving.make_key(storage.db, bob).key}
    server = Server(storage, hosted=True)
    yield {"storage": storage, "alice": alice, "bob": bob, "runs": runs, "keys": keys, "server": server}
    server.stop()


def student_confidences(run_dir, texts: list[str]) -> list[float]:
    labels = RunPaths(run_dir).read_config()["labels"]
    source = resolve_source(str(run_dir / "student"))
    model, tok = load_for_task(source, "classification", labels).eval(), load_tokenizer(source)
    with torch.inference_mode():
        probs = model(**tok(texts, truncation=True, max_length=256, padding=True, return_tensors="pt")).logits.softmax(-1)
    return probs.max(-1).values.tolist()


def test_a_classifier_answers_and_the_teacher_takes_exactly_the_unsure_texts(team, cls_run):
    storage, alice, server = team["storage"], team["alice"], team["server"]
    sure = student_confidences(cls_run, TICKETS)
    threshold = sorted(sure)[len(sure) // 2]  # half the texts below it
    row = service.deploy(storage, alice, team["runs"]["cls"], "student", "triage", True, threshold)
    assert row.name == "triage" and row.task == "classification"
    headers = {"Authorization": f"Bearer {team['keys']['alice']}"}
    answer = httpx.post(f"{server.url}/api/v1/models/triage/classify", json={"texts": TICKETS}, headers=headers, timeout=120)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert answer.json()["hybrid"] is True and answer.json()["threshold"] == pytest.approx(threshold)
    asked = [r["teacher_answered"] for r in results]
    assert asked == [s < threshold for s in sure] and 0 < sum(asked) < len(TICKETS)
    for r, s in zip(results, sure):
        assert r["label"] in r["probabilities"] and abs(sum(r["probabilities"].values()) - 1) < 1e-4
        if r["teacher_answered"]:
            assert r["student"]["confidence"] == pytest.approx(s, abs=1e-4)
        else:
            assert r["confidence"] == pytest.approx(s, abs=1e-4)
    one = httpx.post(f"{server.url}/api/v1/models/triage/classify", json={"text": TICKETS[0]}, headers=headers, timeout=60)
    assert one.status_code == 200 and one.json()["label"] == results[0]["label"]

    # metrics: requests, latency, and who answered
    metrics = httpx.get(f"{server.url}/metrics", headers=headers, timeout=30)
    assert metrics.status_code == 403  # a user's key: the metrics are the administrator's
    admin = records.create_user(storage.db, "root", "z-hash", is_admin=True)
    metrics = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {serving.make_key(storage.db, admin).key}"})
    samples = {
        (x.name, tuple(sorted(x.labels.items()))): x.value
        for family in text_string_to_metric_families(metrics.text)
        for x in family.samples
    }
    here = ("model", "alice/triage")
    assert samples[("slm_requests_total", (here, ("route", "classify"), ("status", "200")))] == 2
    assert samples[("slm_answers_total", (("answered_by", "teacher"), here))] == sum(asked) + asked[0]
    assert samples[("slm_answers_total", (("answered_by", "model"), here))] == len(asked) - sum(asked) + (not asked[0])
    assert samples[("slm_request_seconds_count", (here, ("route", "classify")))] == 2

    # the examples the Deploy step shows are calls that work
    assert f"{server.url}/api/v1/models/triage/classify" in curl_line(server.url, "triage", "classification")
    assert "teacher_answered" in python_snippet(server.url, "triage", "classification")


def test_keys_reach_only_their_owners_models(team):
    storage, server, runs = team["storage"], team["server"], team["runs"]
    service.deploy(storage, team["alice"], runs["cls"], "student", "triage", False, None)
    url = f"{server.url}/api/v1/models/triage/classify"
    body = {"text": TICKETS[1]}

    def call(key: str | None) -> httpx.Response:
        return httpx.post(url, json=body, headers={"Authorization": f"Bearer {key}"} if key else {}, timeout=60)

    assert call(team["keys"]["alice"]).status_code == 200
    mine = call(team["keys"]["bob"])  # bob's key: alice's model does not exist for him
    assert mine.status_code == 404 and "You serve no model named 'triage'" in mine.json()["error"]["message"]
    assert call(None).status_code == 401  # hosted: a key even on this machine
    assert call("slm-made-up").status_code == 401
    with pytest.raises(Exception, match="not found|There is no job"):
        service.deploy(storage, team["bob"], runs["cls"], "student", "mine-now", False, None)  # not his run
    key_id = serving.keys_of(storage.db, team["alice"])[0].id
    with pytest.raises(Exception, match="You have no key"):
        serving.revoke_key(storage.db, team["bob"], key_id)  # not his key
    serving.revoke_key(storage.db, team["alice"], key_id)
    refused = call(team["keys"]["alice"])
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    # a stopped model stops answering; its row stays
    fresh = serving.make_key(storage.db, team["alice"]).key
    serving.stop(storage.db, team["alice"], serving.find_served(storage.db, team["alice"], "triage").id)
    assert call(fresh).status_code == 404


def test_an_openai_client_chats_with_a_served_generator_streaming_too(team):
    storage, server = team["storage"], team["server"]
    service.deploy(storage, team["alice"], team["runs"]["lm"], "student", "faq-bot", False, None)
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=team["keys"]["alice"], max_retries=0)
    assert [m.id for m in client.models.list().data] == ["faq-bot"]
    messages = [{"role": "user", "content": "How long does delivery take?"}]
    reply = client.chat.completions.create(model="faq-bot", messages=messages, max_tokens=24)
    said = reply.choices[0].message.content
    assert reply.choices[0].finish_reason in ("stop", "length") and 0 < reply.usage.completion_tokens <= 24
    streamed = client.chat.completions.create(model="faq-bot", messages=messages, max_tokens=24, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed).strip() == said  # greedy: the same answer
    completion = client.completions.create(model="faq-bot", prompt="Question: Do you ship abroad?\nAnswer:", max_tokens=8)
    assert completion.choices[0].text is not None and completion.usage.completion_tokens <= 8
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=messages)
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.chat.completions.create(model="faq-bot", messages=messages, max_tokens=100000)
    other = openai.OpenAI(base_url=f"{server.url}/v1", api_key=team["keys"]["bob"], max_retries=0)
    assert other.models.list().data == []
    with pytest.raises(openai.NotFoundError):
        other.chat.completions.create(model="faq-bot", messages=messages)
    assert 'client.chat.completions.create(model="faq-bot"' in python_snippet(server.url, "faq-bot", "causal_lm")


def test_overload_is_answered_429_and_the_server_answers_on(team, monkeypatch):
    storage, server = team["storage"], team["server"]
    monkeypatch.setattr(engine, "QUEUE_LIMIT", 4)
    service.deploy(storage, team["alice"], team["runs"]["cls"], "student", "busy", False, None)
    headers = {"Authorization": f"Bearer {team['keys']['alice']}"}
    url = f"{server.url}/api/v1/models/busy/classify"
    with concurrent.futures.ThreadPoolExecutor(24) as pool:
        codes = list(
            pool.map(lambda i: httpx.post(url, json={"texts": TICKETS[:3]}, headers=headers, timeout=120).status_code, range(48))
        )
    assert set(codes) <= {200, 429} and codes.count(429) > 0 and codes.count(200) > 0, codes
    too_many = httpx.post(url, json={"texts": ["x"] * 65}, headers=headers, timeout=30)
    assert too_many.status_code == 413 and "at most 64" in too_many.json()["error"]["message"]
    huge = httpx.post(url, content=b'{"text": "' + b"a" * 300_000 + b'"}', headers=headers, timeout=30)
    assert huge.status_code == 413
    assert httpx.post(url, json={"text": "still here?"}, headers=headers, timeout=60).status_code == 200


def test_a_restart_serves_the_same_models_again(team):
    storage = team["storage"]
    service.deploy(storage, team["alice"], team["runs"]["cls"], "student", "triage", False, None)
    team["server"].stop()
    again = Server(open_storage(), hosted=True)  # as after a restart: a new process, the same database
    try:
        again.serving.warm().join(timeout=120)
        assert len(again.serving._models) == 1
        answer = httpx.post(
            f"{again.url}/api/v1/models/triage/classify",
            json={"text": TICKETS[2]},
            headers={"Authorization": f"Bearer {team['keys']['alice']}"},
            timeout=60,
        )
        assert answer.status_code == 200
    finally:
        again.stop()


def test_a_local_studio_answers_its_own_machine_without_a_key(cls_run):
    storage = open_storage()
    me = records.local_user(storage.db)
    job = finished_run(storage, me, cls_run)
    row = service.deploy(storage, me, job, "student", "", False, None)
    assert row.name == f"job{job}-student"
    server = Server(storage, hosted=False)
    try:
        answer = httpx.post(f"{server.url}/api/v1/models/{row.name}/classify", json={"text": TICKETS[3]}, timeout=60)
        assert answer.status_code == 200 and answer.json()["teacher_answered"] is False
    finally:
        server.stop()


def test_the_command_line_makes_keys_and_serves_models(cls_run):
    from typer.testing import CliRunner

    from studio.cli.shell import app

    storage = open_storage()
    job = finished_run(storage, records.local_user(storage.db), cls_run)
    cli = CliRunner()
    made = cli.invoke(app, ["keys", "create", "--name", "helpdesk"])
    assert made.exit_code == 0 and made.output.startswith("slm-") and "not shown again" in made.output
    listed = cli.invoke(app, ["keys", "list"]).output
    assert "helpdesk" in listed and "active" in listed and made.output.split()[0] not in listed  # the key itself: never
    served = cli.invoke(app, ["deploy", str(job), "--name", "triage", "--url", "http://10.0.0.5:7860"])
    assert served.exit_code == 0 and "http://10.0.0.5:7860/api/v1/models/triage/classify" in served.output
    assert "triage" in cli.invoke(app, ["deployments"]).output
    wrong = cli.invoke(app, ["deploy", str(job), "--model", "nope"])
    assert wrong.exit_code == 2 and "'nope' is not a model of this run" in wrong.output
    twice = cli.invoke(app, ["deploy", str(job), "--name", "triage"])
    assert twice.exit_code == 2 and "already serve a model named 'triage'" in twice.output
    assert cli.invoke(app, ["undeploy", "triage"]).exit_code == 0
    assert "You serve no model" in cli.invoke(app, ["deployments"]).output
    assert "revoked" in cli.invoke(app, ["keys", "revoke", "1"]).output


def test_an_int8_variant_answers_two_batches_at_once_each_caller_its_own_texts(cls_run, tmp_path):
    """An ONNX Runtime model answers two batches at a time (engine.ONNX_WORKERS), each call on its share of the
    cores; many callers at once each get their own texts' answers, the ones the variant gives alone."""
    from studio.compress.pipeline import compress_many, parse_recipe
    from studio.compress.variant import load_variant

    run = shutil.copytree(cls_run, tmp_path / "run")  # the shared run stays as it was (test_compress counts its variants)
    compress_many(run, [("srv-int8", parse_recipe("int8"))])
    storage = open_storage()
    me = records.local_user(storage.db)
    row = service.deploy(storage, me, finished_run(storage, me, run), "srv-int8", "fast", False, None)
    texts = [f"{TICKETS[i % len(TICKETS)]} (order {i})" for i in range(40)] + ["my parcel " * 400]  # the last one cut
    alone = load_variant(RunPaths(run).find_model("srv-int8").folder)
    labels = RunPaths(run).read_config()["labels"]
    encoded = alone.tokenizer(texts, truncation=True, max_length=256, padding=True, return_tensors="pt")
    expected = alone.model(**encoded).logits.softmax(-1)
    server = Server(storage, hosted=False)
    try:
        model = server.serving.model(row)
        assert model.batcher.workers == engine.ONNX_WORKERS == 2
        assert model.main.model.session.get_session_options().intra_op_num_threads == max(1, torch.get_num_threads() // 2)
        url = f"{server.url}/api/v1/models/fast/classify"
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda text: httpx.post(url, json={"text": text}, timeout=120), texts))
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers if a.status_code != 200][:1]
        for answer, probs in zip(answers, expected):
            said = answer.json()
            assert said["label"] == labels[int(probs.argmax())]
            assert [said["probabilities"][label] for label in labels] == pytest.approx(probs.tolist(), abs=1e-4)
    finally:
        server.stop()
