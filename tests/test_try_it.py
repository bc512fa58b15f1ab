"""Trying a model on one text: the answer the model in memory gives, for any model of the run, found by name."""

import json

import pytest
import torch

from studio.errors import ConfigError
from studio.models import load_for_task, load_tokenizer
from studio.teacher import resolve_source
from studio.try_it import try_model

TEXT = "I was charged twice for the same order"


def test_a_classifier_says_its_label_and_how_sure_it_is_like_the_model_in_memory(cls_run):
    labels = json.loads((cls_run / "config.json").read_text())["labels"]
    source = resolve_source(str(cls_run / "student"))
    model, tokenizer = load_for_task(source, "classification", labels).eval(), load_tokenizer(source)
    with torch.inference_mode():
        want = model(**tokenizer([TEXT], return_tensors="pt")).logits.softmax(-1)[0]
    tried = try_model(cls_run, "student", TEXT)
    assert tried.label == labels[int(want.argmax())] and tried.confidence == pytest.approx(float(want.max()), abs=1e-5)
    assert len(tried.runners_up) == 2 and all(p <= tried.confidence for _, p in tried.runners_up)
    assert tried.words().startswith(f"**student** says **{tried.label}**, {tried.confidence:.0%} sure (then ")
    assert try_model(cls_run, "teacher", TEXT).label in labels


def test_a_variant_is_tried_in_its_own_form_and_anything_else_is_refused(cls_run):
    from studio.compress.pipeline import compress, parse_recipe

    if not (cls_run / "variants" / "try-int8").exists():
        compress(cls_run, parse_recipe("int8"), name="try-int8")
    assert try_model(cls_run, "try-int8", TEXT).label in json.loads((cls_run / "config.json").read_text())["labels"]
    with pytest.raises(ConfigError, match="not a model of this run"):
        try_model(cls_run, "../student", TEXT)
    with pytest.raises(ConfigError, match="type a text"):
        try_model(cls_run, "student", "   ")


def test_a_text_generator_writes_an_answer_and_says_whether_the_teacher_would_be_asked(lm_run):
    """The threshold is the student's median confidence in its answers to held-out questions (measured when the run
    is evaluated); Try it measures its answer's confidence the same way and compares."""
    from studio.evaluate import evaluate_run

    rows = {r["name"]: r for r in evaluate_run(lm_run)["models"]}
    assert rows["teacher"]["hand_over_threshold"] is None and 0.0 < rows["student"]["hand_over_threshold"] <= 1.0
    tried = try_model(lm_run, "student", "Do you ship abroad?")
    assert isinstance(tried.answer, str) and tried.words().startswith("**student** writes: ")
    assert tried.hand_over == rows["student"]["hand_over_threshold"]
    if tried.answer.strip():
        assert 0.0 < tried.confidence <= 1.0
        alone = tried.confidence >= tried.hand_over
        assert ("It would answer alone" in tried.words()) == alone
        assert ("The teacher would be asked: it is" in tried.words()) == (not alone)


def test_try_it_says_whether_the_teacher_would_be_asked(cls_run):
    """Evaluation chooses each model's hand-over threshold on the validation split (the export's rule); Try it
    reads it and says, for the text tried, whether the student answers alone or the teacher would be asked."""
    from studio.evaluate import evaluate_run

    report = evaluate_run(cls_run)
    rows = {r["name"]: r for r in report["models"]}
    student = rows["student"]
    assert rows["teacher"]["hand_over_threshold"] is None  # the teacher asks nobody
    assert 0.0 <= student["hand_over_threshold"] <= 1.0 and 0.0 <= student["student_share"] <= 1.0
    assert student["hybrid_accuracy"] is not None
    tried = try_model(cls_run, "student", TEXT)
    assert tried.hand_over == student["hand_over_threshold"]
    alone = tried.confidence >= tried.hand_over and tried.hand_over < 1.0
    assert ("It would answer alone" in tried.words()) == alone
    assert ("The teacher would be asked" in tried.words()) == (not alone)
    assert "would be asked" not in try_model(cls_run, "teacher", TEXT).words()


def test_the_hand_over_rule_is_the_one_the_export_runs():
    from studio.export import predict
    from studio.hand_over import hand_over_words, student_answers

    for confidence, threshold in [(0.5, 0.5), (0.49, 0.5), (1.0, 1.0), (0.9, 0.0), (0.2, 0.95)]:
        assert student_answers(confidence, threshold) == predict.student_answers(confidence, threshold)
    assert hand_over_words(0.9, None) == ""
    assert hand_over_words(0.9, 0.62).startswith("It would answer alone: it is at least 62% sure")
    assert hand_over_words(0.4, 0.62).startswith("The teacher would be asked: below 62% sure")
