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


def test_a_text_generator_writes_an_answer(lm_run):
    tried = try_model(lm_run, "student", "Do you ship abroad?")
    assert isinstance(tried.answer, str) and tried.words().startswith("**student** writes: ")
