"""A teacher asked through a prompt (studio.asked_teacher): on this machine, through an OpenAI-compatible server,
and its answers kept so a re-run asks nothing twice."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from studio.asked_teacher import (
    AskedTeacher,
    EndpointScorer,
    LocalScorer,
    TeacherEndpointError,
    answers_of,
    label_scores,
    parse_descriptions,
    pick_examples,
)
from studio.dataset import prepare_dataset
from studio.errors import ConfigError
from tiny_models import small_config, tickets_few_labels

LABELS = ["billing", "technical_issue", "shipping"]


def test_the_prompt_names_each_label_in_words_with_its_description_and_examples():
    rows = [{"text": "card declined twice", "label": "billing"}, {"text": "a much longer text about a bill", "label": "billing"}]
    rows += [{"text": "app crashes", "label": "technical_issue"}]
    examples = pick_examples(rows, LABELS, 1)
    assert examples == [("card declined twice", "billing"), ("app crashes", "technical_issue")]  # shortest, label by label
    teacher = AskedTeacher("m", LABELS, descriptions=parse_descriptions("billing: payments and invoices\n", LABELS))
    teacher.examples = examples
    prefix = teacher.prefix()
    assert "- billing: payments and invoices\n- technical issue\n- shipping" in prefix
    assert "Text: app crashes\nCategory: technical issue" in prefix
    assert teacher.suffix("where is\n my parcel") == "Text: where is my parcel\nCategory:"
    with pytest.raises(ConfigError, match="'refunds: money back' does not start with one of your labels"):
        parse_descriptions("refunds: money back", LABELS)


def test_an_endpoints_top_tokens_are_read_for_the_label_names():
    top = {" bill": -0.5, " tech": -1.0, "bill": -2.0, " the": -3.0}
    scores = label_scores(top, ["billing", "technical issue", "shipping"])
    assert scores[0] == pytest.approx(float(torch.tensor([-0.5, -2.0]).logsumexp(0)))  # ' bill' and 'bill' both begin it
    assert scores[1] == -1.0 and scores[2] == -4.0  # no token begins 'shipping': below the least likely seen


def test_local_scores_match_the_models_own_probabilities_and_alike_names_are_scored_whole(tiny_llama):
    model, tok = AutoModelForCausalLM.from_pretrained(tiny_llama), AutoTokenizer.from_pretrained(tiny_llama)
    scorer = LocalScorer(model, tok)
    prefix, suffixes = "Sort these:\n", ["Text: my card\nCategory:", "Text: the app crashes again and again\nCategory:"]
    got = scorer(prefix, suffixes, ["billing", "shipping"])
    for i, suffix in enumerate(suffixes):  # the cached prefix gives what one whole pass gives
        ids = torch.tensor(
            [tok(prefix, add_special_tokens=False)["input_ids"] + tok(suffix, add_special_tokens=False)["input_ids"]]
        )
        logp = model(input_ids=ids).logits[0, -1].log_softmax(-1)
        for c, name in enumerate(["billing", "shipping"]):
            first = tok(" " + name, add_special_tokens=False)["input_ids"][0]
            assert got[i, c].item() == pytest.approx(logp[first].item(), abs=1e-4)
    alike = ["ship it", "ship back"]  # same first token: each name's tokens, whole
    whole = scorer(prefix, suffixes[:1], alike)
    ids = tok(prefix, add_special_tokens=False)["input_ids"] + tok(suffixes[0], add_special_tokens=False)["input_ids"]
    for c, name in enumerate(alike):
        name_ids = tok(" " + name, add_special_tokens=False)["input_ids"]
        logp = model(input_ids=torch.tensor([ids + name_ids])).logits[0].log_softmax(-1)
        want = sum(logp[len(ids) - 1 + j, t].item() for j, t in enumerate(name_ids))
        assert whole[0, c].item() == pytest.approx(want, abs=1e-3)
    assert whole[0, 0] != whole[0, 1]


def test_a_run_with_an_asked_teacher_teaches_the_student_and_a_rerun_asks_nothing(
    tiny_llama, tiny_bert, samples, tmp_path, monkeypatch
):
    from studio import asked_teacher
    from studio.distill import distill
    from studio.evaluate import evaluate_run
    from studio.run import RunPaths

    data = prepare_dataset(tickets_few_labels(samples, tmp_path / "few.csv", 160, 60), tmp_path / "ds")
    config = small_config(teacher=str(tiny_llama), student=str(tiny_bert), teacher_training="ask", max_steps=3)
    book = tmp_path / "answers.sqlite"
    distill(config, data, tmp_path / "run", answers_file=book)
    plan = json.loads((tmp_path / "run" / "config.json").read_text())["plan"]
    texts = len({" ".join(r["text"].split())[:600] for r in data.split("train") + data.split("unlabelled")})
    assert plan["texts_unlabelled"] == data.report.unlabelled > 0
    assert f"{tiny_llama} (7 of your labelled texts as examples) was asked to pick a label" in plan["words"]
    assert "teacher" not in plan["stages"]  # nothing was trained
    import sqlite3

    assert (
        sqlite3.connect(book).execute("SELECT COUNT(*) FROM answers").fetchone()[0] == texts + 1
    )  # each distinct text, + the empty one
    report = evaluate_run(tmp_path / "run")
    teacher = next(m for m in report["models"] if m["name"] == "teacher")
    assert teacher["note"].startswith("asked through a prompt") and teacher["params"] > 0 and teacher["macro_f1"] is not None
    with pytest.raises(ConfigError, match="was asked through a prompt"):
        RunPaths(tmp_path / "run").find_model("teacher")

    with pytest.raises(ConfigError, match="needs a text generator as the teacher .* is a BertModel, which cannot be asked"):
        distill(small_config(teacher=str(tiny_bert), teacher_training="ask"), data, tmp_path / "bert")

    def no_model(_):
        raise AssertionError("a re-run must not load the teacher: every answer is kept")

    monkeypatch.setattr(asked_teacher, "scorer_for", no_model)
    distill(config, data, tmp_path / "again", answers_file=book)
    assert (tmp_path / "again" / "student" / "model.safetensors").exists()


def test_an_openai_compatible_server_is_asked_through_the_openai_client(tiny_llama, tmp_path):
    from openai_server import serve

    model, tok = AutoModelForCausalLM.from_pretrained(tiny_llama), AutoTokenizer.from_pretrained(tiny_llama)
    url, server = serve(model, tok)
    try:
        teacher = AskedTeacher("tiny", ["billing", "shipping"], endpoint=url)
        records = [{"text": "my card was charged twice"}, {"text": "the parcel never came"}]
        got = answers_of(teacher, records, tmp_path / "a.sqlite", scorer=EndpointScorer(url, "tiny"))
        assert got.shape == (2, 2) and torch.allclose(got.exp().sum(-1), torch.ones(2))
    finally:
        server.shutdown()
    with pytest.raises(TeacherEndpointError, match=f"teacher's server at {url} could not be reached"):
        EndpointScorer(url, "tiny", timeout_s=2, retries=0)("p", ["x"], ["billing"])
    url, server = serve(model, tok, logprobs=False)
    try:
        with pytest.raises(TeacherEndpointError, match="must support 'logprobs'"):
            EndpointScorer(url, "tiny")("p", ["x"], ["billing"])
    finally:
        server.shutdown()


def test_a_hosted_studio_asks_only_the_servers_its_administrator_lists(monkeypatch):
    from studio.jobs.service import check_endpoint_allowed

    check_endpoint_allowed("http://127.0.0.1:8080/v1")  # a laptop: the user's own choice
    monkeypatch.setenv("SLM_STUDIO_AUTH", "users")
    with pytest.raises(ConfigError, match="does not send your texts to http://10.0.0.9/v1"):
        check_endpoint_allowed("http://10.0.0.9/v1")
    monkeypatch.setenv("SLM_STUDIO_TEACHER_ENDPOINTS", "http://10.0.0.9/v1")
    check_endpoint_allowed("http://10.0.0.9/v1")


def test_a_server_that_is_down_later_leaves_its_kept_answers_measured_untimed(tiny_llama, tmp_path):
    from openai_server import serve

    from studio.evaluate import _asked_teacher

    model, tok = AutoModelForCausalLM.from_pretrained(tiny_llama), AutoTokenizer.from_pretrained(tiny_llama)
    url, server = serve(model, tok)
    teacher = AskedTeacher("tiny", ["billing", "shipping"], endpoint=url)
    test = [{"text": "my card was charged twice", "label": "billing"}, {"text": "the parcel never came", "label": "shipping"}]
    book = tmp_path / "a.sqlite"
    answers_of(teacher, test, book, scorer=EndpointScorer(url, "tiny"))
    server.shutdown()
    server.server_close()
    info = {"asked": teacher.to_dict(), "answers": str(book), "path": url}
    metrics, predictions, _ = _asked_teacher(info, test, ["billing", "shipping"], [])
    assert len(predictions) == 2 and metrics.macro_f1 is not None and metrics.latency_ms == 0.0
    assert "not timed: The teacher's server at" in metrics.note and metrics.size_bytes == 0
