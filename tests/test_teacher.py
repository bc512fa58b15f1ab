import os

import pytest

from studio.errors import ModelLoadError, OfflineError
from studio.models import load_causal_lm, load_classifier, load_tokenizer
from studio.teacher import CATALOG, package_folder, resolve_source


def test_catalog_entries_resolve_to_installed_packages():
    for entry in CATALOG.values():
        for package in entry.packages:
            folder = package_folder(package)
            assert folder is not None, f"{package} is in requirements-models.txt and must be installed"
            assert "site-packages" in str(folder) or "dist-packages" in str(folder)


def test_hub_id_offline_says_so():
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    with pytest.raises(OfflineError, match="offline.*give its folder instead.*minilm-l6"):
        resolve_source("someone/some-model")


def test_unknown_name_and_unsafe_folders(tmp_path):
    with pytest.raises(ModelLoadError, match="neither a catalog entry"):
        resolve_source("./no/such/folder")
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelLoadError, match="pickle format .* convert it to safetensors"):
        resolve_source(str(tmp_path))


def test_minilm_teacher_loads_offline_with_a_new_head():
    source = resolve_source("minilm-l6")
    model, ready = load_classifier(source, ["billing", "shipping"])
    assert not ready and model.config.num_hidden_layers == 6 and model.config.num_labels == 2
    assert load_tokenizer(source)("hello")["input_ids"][0] == 101


@pytest.mark.slow
def test_smollm2_gguf_converts_once_and_reloads_fast(studio_home):
    import time

    first = resolve_source("smollm2-135m")
    assert str(studio_home) in first.path
    started = time.perf_counter()
    again = resolve_source("smollm2-135m")
    model = load_causal_lm(again)
    assert time.perf_counter() - started < 10
    assert model.config.num_hidden_layers == 30 and model.config.vocab_size == 49152
    tokenizer = load_tokenizer(again)
    ids = tokenizer("The parcel arrived", return_tensors="pt")["input_ids"]
    assert model(input_ids=ids).logits.shape[-1] == 49152


@pytest.mark.slow
def test_gemma3_joins_its_pieces_converts_and_knows_facts(studio_home):
    """Ran on real inputs: the converted Gemma 3 answers like the published model, and takes a head."""
    import torch

    from studio.teacher import terms_path

    source = resolve_source("gemma3-270m")
    assert str(studio_home) in source.path and not list(studio_home.rglob("*.gguf"))  # the joined file is gone
    model, tokenizer = load_causal_lm(source), load_tokenizer(source)
    assert model.config.num_hidden_layers == 18 and tokenizer.pad_token == "<pad>"
    ids = tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1]
    paris, london = (tokenizer(w, add_special_tokens=False)["input_ids"][0] for w in (" Paris", " London"))
    assert logits[paris] > logits[london]
    classifier, ready = load_classifier(source, ["bad", "good"])
    assert not ready and type(classifier).__name__ == "Gemma3TextForSequenceClassification"
    assert classifier(**tokenizer(["fine", "awful service"], padding=True, return_tensors="pt")).logits.shape == (2, 2)
    assert terms_path(CATALOG["gemma3-270m"]).read_text().count("Gemma") > 10


def test_fine_tune_cost_is_measured_here_and_remembered(tiny_bert):
    from studio.teacher_cost import known_cost, measure_cost
    from studio.ui.teacher_step import measure_here

    assert known_cost(str(tiny_bert)) is None
    cost = measure_cost(str(tiny_bert))
    assert cost.seconds_per_step > 0 and "cores" in cost.machine
    assert known_cost(str(tiny_bert)) == cost and known_cost(str(tiny_bert), "causal_lm") is None
    text, rows = measure_here("**tiny** — a folder", str(tiny_bert))
    assert "s per training step of 16 texts × 128 tokens" in text and text.startswith("**tiny**") and not cost.head_only
    assert [row[0] for row in rows] == list(CATALOG) and all(row[5] == "not measured yet" for row in rows)
    text, _ = measure_here("nothing chosen", None)
    assert "Choose a teacher" in text
