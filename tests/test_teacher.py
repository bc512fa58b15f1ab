import os

import pytest

from studio.errors import ModelLoadError, OfflineError
from studio.teacher import CATALOG, load_causal_lm, load_classifier, load_tokenizer, package_folder, resolve_source


def test_catalog_entries_resolve_to_installed_packages():
    for entry in CATALOG.values():
        folder = package_folder(entry.package)
        assert folder is not None, f"{entry.package} is in requirements-models.txt and must be installed"
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
