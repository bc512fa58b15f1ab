"""GGUF export: a tiny Llama written as GGUF, then read back by transformers in a fresh process, gives the same logits
and the same token ids as the original folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gguf
import pytest
import torch
from transformers import AutoTokenizer, LlamaForCausalLM

from studio.errors import UnsupportedError
from studio.export.gguf import write_gguf
from tiny_models import build_tiny_bert, build_tiny_llama

os.environ["HF_HUB_OFFLINE"] = "1"

SENTENCES = [
    "My order hasn't arrived yet, can you check?",
    "Refund   please!! The app crashed twice on 12/03.",
    "  leading spaces, tabs\tand a new\nline",
    "ends the ticket<|endoftext|>and starts another",
]
# Which tied/untied folder and weight type each written file comes from.
EXPORTS = {"tied-f16.gguf": ("tied", "f16"), "tied-f32.gguf": ("tied", "f32"), "untied-f16.gguf": ("untied", "f16")}

# Loads each GGUF the way a user of transformers would, in a process that never saw the original folder.
READ_BACK = """
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
names, sentences = json.loads(sys.argv[1]), json.loads(sys.argv[2])
out = {}
for name in names:
    model = AutoModelForCausalLM.from_pretrained(".", gguf_file=name).eval()
    tok = AutoTokenizer.from_pretrained(".", gguf_file=name)
    ids = [tok(s)["input_ids"] for s in sentences]
    with torch.no_grad():
        logits = [model(torch.tensor([i])).logits[0].tolist() for i in ids]
    out[name] = {"ids": ids, "logits": logits, "tied": model.config.tie_word_embeddings}
print(json.dumps(out))
"""


def _llama_folders(root: Path) -> dict[str, Path]:
    """A tied and an untied tiny Llama sharing one tokenizer, with weights big enough that layout mistakes show."""
    tied = build_tiny_llama(root / "tied")
    model = LlamaForCausalLM.from_pretrained(tied)
    torch.manual_seed(0)
    with torch.no_grad():
        # Freshly initialised weights (std 0.02) give near-zero logits whatever the q/k order; at 0.2 a missing
        # rotary permutation changes the logits by several units instead of hundredths.
        for param in model.parameters():
            if param.ndim == 2:
                param.normal_(0, 0.2)
    model.save_pretrained(tied)
    untied = root / "untied"
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.lm_head.weight) * 0.2)
    model.save_pretrained(untied)
    AutoTokenizer.from_pretrained(tied).save_pretrained(untied)
    return {"tied": tied, "untied": untied}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("gguf")
    folders = _llama_folders(root)
    out_dir = root / "out"
    for name, (variant, weight_type) in EXPORTS.items():
        assert write_gguf(folders[variant], out_dir / name, weight_type=weight_type) == out_dir / name
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    run = subprocess.run(
        [sys.executable, "-c", READ_BACK, json.dumps(list(EXPORTS)), json.dumps(SENTENCES)],
        cwd=out_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return {"folders": folders, "out_dir": out_dir, "read_back": json.loads(run.stdout.strip().splitlines()[-1])}


@pytest.mark.parametrize("name", list(EXPORTS))
def test_gguf_reads_back_with_the_same_logits_and_tokens(exported: dict, name: str) -> None:
    variant, weight_type = EXPORTS[name]
    folder = exported["folders"][variant]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = LlamaForCausalLM.from_pretrained(folder).eval()
    got = exported["read_back"][name]
    assert got["tied"] == (variant == "tied")
    for sentence, ids, logits in zip(SENTENCES, got["ids"], got["logits"]):
        assert ids == tokenizer(sentence)["input_ids"], sentence
        with torch.no_grad():
            expected = model(torch.tensor([ids])).logits[0]
        # f16 keeps ~3 significant digits of each weight; logits here reach about +-8.
        atol = 3e-2 if weight_type == "f16" else 1e-4
        torch.testing.assert_close(torch.tensor(logits), expected, atol=atol, rtol=0)


def test_gguf_carries_llama_metadata_and_tensor_types(exported: dict) -> None:
    reader = gguf.GGUFReader(exported["out_dir"] / "tied-f16.gguf")
    fields = {name: field.contents() for name, field in reader.fields.items()}
    assert fields["general.architecture"] == "llama"
    assert fields["general.file_type"] == gguf.LlamaFileType.MOSTLY_F16
    sizes = ("block_count", "embedding_length", "feed_forward_length", "rope.dimension_count", "attention.key_length")
    assert [fields[f"llama.{key}"] for key in sizes] == [4, 32, 64, 16, 16]
    assert (fields["llama.attention.head_count"], fields["llama.attention.head_count_kv"]) == (2, 1)
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "gpt-2"
    assert fields["tokenizer.ggml.tokens"][0] == "<|endoftext|>"
    assert fields["tokenizer.ggml.token_type"][:2] == [gguf.TokenType.CONTROL, gguf.TokenType.NORMAL]
    assert fields["tokenizer.ggml.eos_token_id"] == 0 and fields["tokenizer.ggml.add_bos_token"] is False
    assert fields["tokenizer.ggml.merges"]
    types = {t.name: t.tensor_type for t in reader.tensors}
    assert "output.weight" not in types and types["token_embd.weight"] == gguf.GGMLQuantizationType.F16
    assert types["blk.3.attn_norm.weight"] == types["output_norm.weight"] == gguf.GGMLQuantizationType.F32
    assert len(types) == 2 + 4 * 9

    untied = {t.name for t in gguf.GGUFReader(exported["out_dir"] / "untied-f16.gguf").tensors}
    assert "output.weight" in untied
    f32 = gguf.GGUFReader(exported["out_dir"] / "tied-f32.gguf").tensors
    assert {t.tensor_type for t in f32} == {gguf.GGMLQuantizationType.F32}
    assert not list(exported["out_dir"].glob(".*partial")), "no temp file is left behind"


def test_bert_is_refused_with_a_way_forward(tmp_path: Path) -> None:
    folder = build_tiny_bert(tmp_path / "bert")
    with pytest.raises(UnsupportedError, match="ONNX or safetensors"):
        write_gguf(folder, tmp_path / "bert.gguf")
    assert not list(tmp_path.glob("*.gguf")) and not list(tmp_path.glob(".*partial"))


def test_llama_without_a_byte_level_bpe_tokenizer_is_refused(exported: dict, tmp_path: Path) -> None:
    folder = tmp_path / "llama"
    folder.mkdir()
    source = exported["folders"]["tied"]
    (folder / "config.json").write_text((source / "config.json").read_text())
    with pytest.raises(UnsupportedError, match="tokenizer.json"):
        write_gguf(folder, tmp_path / "none.gguf")
    tok = json.loads((source / "tokenizer.json").read_text())
    tok["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": False}
    (folder / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(UnsupportedError, match="byte-level BPE"):
        write_gguf(folder, tmp_path / "metaspace.gguf")


def test_per_layer_sizes_are_refused(exported: dict, tmp_path: Path) -> None:
    folder = tmp_path / "llama"
    folder.mkdir()
    config = json.loads((exported["folders"]["tied"] / "config.json").read_text())
    config["intermediate_size"] = [64, 64, 96, 96]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UnsupportedError, match="intermediate_size"):
        write_gguf(folder, tmp_path / "x.gguf")
