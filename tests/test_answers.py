"""Text generators are judged by what they write: answers as the export gives them, scored against the
references and read by a teacher that knows the language (a tiny Llama trained on the shop FAQ here)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from studio.answers import (
    Judge,
    NoRepeatInAnswer,
    banned_tokens,
    degenerate,
    generate_answers,
    repeated_share,
    side_by_side,
)
from studio.batches import causal_text
from studio.charts import Budget, recommend
from studio.export import predict
from studio.models import load_causal_lm, load_tokenizer
from studio.teacher import resolve_source

SAMPLES = Path(__file__).resolve().parent.parent / "studio" / "samples"


def faq() -> list[dict]:
    rows = [json.loads(line) for line in (SAMPLES / "shop_faq.jsonl").read_text().splitlines() if line.strip()]
    return [{"prompt": r["question"], "response": r["answer"]} for r in rows]


@pytest.fixture(scope="module")
def reader(tiny_llama, tmp_path_factory) -> Path:
    """The tiny Llama after a few seconds of training on the first 40 FAQ pairs: it has learned which words follow
    which there."""
    torch.manual_seed(0)
    source = resolve_source(str(tiny_llama))
    model, tok = load_causal_lm(source), load_tokenizer(source)
    texts = [causal_text(r, tok) for r in faq()[:40]]
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(200):
        enc = tok(random.Random(step).sample(texts, 16), return_tensors="pt", padding=True, truncation=True, max_length=64)
        model(**enc, labels=enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    folder = tmp_path_factory.mktemp("reader")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def loaded(folder: Path):
    source = resolve_source(str(folder))
    return load_causal_lm(source).eval(), load_tokenizer(source)


def test_degenerate_answers_are_named():
    assert degenerate("", 1.0, 10.0) == "empty" and degenerate(" ... ", 1.0, 10.0) == "empty"
    assert degenerate("to 3 days to 3 days to 3 days to 3 days", 5.0, 10.0) == "repeats itself"
    assert degenerate("You can return it within 30 days.", 20.0, 10.0) is None
    assert degenerate("You can return it within 30 days.", 81.0, 10.0) == "reads as word salad"
    assert repeated_share("a b c a b c") == 0.4  # pairs ab, bc, ca, ab, bc: two of five are repeats
    assert repeated_share("two words") == 0.0


def test_answers_are_the_answers_the_export_gives(reader):
    model, tok = loaded(reader)
    records = faq()[:6]
    batched = generate_answers(model, tok, records, new_tokens=12, batch_size=4)  # left-padded batches
    runner = predict.Runner(reader, "causal_lm")
    assert batched == [predict.generate(runner, r["prompt"], max_new_tokens=12)[0] for r in records]
    assert all(batched)


def test_no_answer_repeats_a_run_of_three_tokens(reader):
    assert sorted(banned_tokens([5, 6, 7, 5, 6])) == [7] and banned_tokens([1, 1, 1]) == {1}
    assert banned_tokens([5, 6]) == set() and banned_tokens([]) == set()
    for answer in ([5, 6, 7, 5, 6], [1, 2, 3, 4], [9, 9, 9], [4, 2, 4, 2, 4], []):  # the export's rule is the same
        assert set(np.flatnonzero(predict.repeats(answer, 20)).tolist()) == banned_tokens(answer)
    model, tok = loaded(reader)
    tok.padding_side = "left"
    enc = tok(["Question: where is my parcel?\nAnswer:", "Question: how do I pay?\nAnswer:"], return_tensors="pt", padding=True)
    free = model.generate(**enc, max_new_tokens=40, do_sample=False, pad_token_id=tok.pad_token_id)
    ruled = model.generate(
        **enc,
        max_new_tokens=40,
        do_sample=False,
        pad_token_id=tok.pad_token_id,
        logits_processor=[NoRepeatInAnswer(enc["input_ids"].shape[1])],
    )
    start = enc["input_ids"].shape[1]

    def runs(row: list[int]) -> list[tuple[int, ...]]:  # up to the end-of-text token (padding follows it)
        row = row[: row.index(tok.eos_token_id)] if tok.eos_token_id in row else row
        return [tuple(row[i : i + 3]) for i in range(len(row) - 2)]

    for row in ruled[:, start:].tolist():
        assert len(set(runs(row))) == len(runs(row))
    assert any(len(set(runs(row))) < len(runs(row)) for row in free[:, start:].tolist())  # the tiny model loops


def test_the_judge_passes_human_answers_and_fails_word_salad_repeats_and_silence(reader):
    model, tok = loaded(reader)
    records = faq()[:12]
    judge = Judge(model, tok, records)
    human = judge.judge(judge.references)
    assert human.fluent and human.rouge_l == pytest.approx(1.0) and human.chrf == pytest.approx(100.0)
    assert human.answer_perplexity == pytest.approx(judge.human_ppl) and human.degenerate_share == 0
    rng = random.Random(1)
    salad = judge.judge([" ".join(rng.sample(r.split(), len(r.split()))) for r in judge.references])
    assert not salad.fluent and "as surprising as the human answers" in salad.why_not
    assert salad.answer_perplexity > 2 * judge.human_ppl and salad.rouge_l < 0.5
    loop = judge.judge(["to 3 days to 3 days to 3 days to 3 days"] * 12)
    assert not loop.fluent and loop.degenerate == ["repeats itself"] * 12 and loop.repetition > 0.3
    silent = judge.judge([""] * 12)
    assert not silent.fluent and silent.answer_perplexity is None and "an empty answer" in silent.why_not
    own = judge.judge(generate_answers(model, tok, records))  # what the reader itself writes reads well to it
    assert own.fluent and own.answer_perplexity < judge.human_ppl


def test_side_by_side_marks_degenerate_answers():
    book = {
        "prompts": ["q1", "q2"],
        "references": ["r1", "r2"],
        "by_model": {"teacher": ["a", "b"], "student": ["", "c"]},
        "degenerate": {"teacher": [None, None], "student": ["empty", None]},
    }
    rows = side_by_side(book)
    assert rows[0] == {"prompt": "q1", "reference": "r1", "teacher": "a", "student": "  [empty]"}
    assert rows[1]["student"] == "c"


def test_a_generator_that_fails_the_fluency_check_is_never_recommended():
    def row(name, rouge, mb, fluent, note=""):
        return {
            "name": name,
            "status": "ok",
            "rouge_l": rouge,
            "perplexity": 3.0,
            "size_bytes": mb * 1e6,
            "latency_ms": 10.0,
            "fluent": fluent,
            "fluency_note": note,
        }

    models = [row("teacher", 0.20, 500, True), row("student", 0.45, 250, False, "12 of 50 answers are no answer")]
    advice = recommend(models, Budget())
    assert advice.name == "teacher" and "fails the fluency check" in advice.misses["student"]
    assert "Not student" in advice.reason
    tight = recommend(models, Budget(max_mb=300))  # the only small model writes word salad: nothing fits
    assert tight.name is None
    alone = recommend([models[1]], Budget())
    assert alone.name is None and "No text generator writes usable answers" in alone.reason


def test_compare_takes_the_fluency_verdict_from_the_report_and_shows_the_answers():
    from studio.ui.compare_step import answers_markdown, with_judgement

    stored = [
        {"name": "teacher", "status": "ok", "rouge_l": 0.2, "size_bytes": 5e8, "latency_ms": 40.0},
        {"name": "student", "status": "ok", "rouge_l": 0.4, "size_bytes": 2e8, "latency_ms": 20.0},
    ]
    report = {
        "models": [
            {"name": "teacher", "fluent": True, "fluency_note": ""},
            {"name": "student", "fluent": False, "fluency_note": "31 of 36 answers are no answer at all"},
        ],
        "answers": {
            "prompts": ["Can I pay | later?"],
            "references": ["Yes, with Klarna."],
            "by_model": {"teacher": ["Yes, you can."], "student": ["3 days 3 days"]},
            "degenerate": {"teacher": [None], "student": ["repeats itself"]},
            "reference_perplexity": 20.0,
        },
    }
    models = with_judgement(stored, report)  # the database keeps numbers only
    assert recommend(models, Budget()).name == "teacher"
    table = answers_markdown(report)
    assert "| Can I pay \\| later? | Yes, with Klarna. | Yes, you can. | 3 days 3 days \\[repeats itself\\] |" in table
    assert answers_markdown({"models": []}) == ""


def test_prompts_that_nearly_repeat_training_ones_are_not_judged():
    from studio.answers import AnswerBook

    train = faq()[:100]
    fresh = faq()[200:210]
    repeats = [{"prompt": "Hi, " + r["prompt"], "response": r["response"]} for r in train[:3]]
    book = AnswerBook(repeats + fresh, train)  # a test file of the user's own, three rows rephrase training ones
    assert book.skipped == 3 and book.records == fresh
