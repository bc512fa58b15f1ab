"""GGUF export: a tiny Llama written as GGUF, then read back by transformers in a fresh process, gives the same logits
and the same token ids as the original folder; the quantized files (q8_0, q4_0) give the logits of the same weights
rounded by gguf's own quantizers, in the tensor types llama.cpp would choose, at the expected fraction of the size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from studio.errors import ConfigError, UnsupportedError
from studio.export.gguf import write_gguf
from studio.export.gguf_check import next_token_agreement
from studio.export.settings import ExportSettings
from tiny_models import build_tiny_bert, build_tiny_llama

os.environ["HF_HUB_OFFLINE"] = "1"

SENTENCES = [
    "My order hasn't arrived yet, can you check?",
    "Refund   please!! The app crashed twice on 12/03.",
    "  leading spaces, tabs\tand a new\nline",
    "ends the ticket<|endoftext|>and starts another",
]
# Which folder and weight type each written file comes from. "odd": ffn_down rows of 48 weights, not a whole
# number of 32-weight blocks, so those matrices fall back to f16.
EXPORTS = {
    "tied-f16.gguf": ("tied", "f16"),
    "tied-f32.gguf": ("tied", "f32"),
    "untied-f16.gguf": ("untied", "f16"),
    "tied-q8_0.gguf": ("tied", "q8_0"),
    "tied-q4_0.gguf": ("tied", "q4_0"),
    "untied-q4_0.gguf": ("untied", "q4_0"),
    "odd-q4_0.gguf": ("odd", "q4_0"),
}
Q = gguf.GGMLQuantizationType
# Against the float model, the largest logit difference for f16/f32 and the relative error (norm of the difference
# over the norm of the logits) for the quantized types. This random 32-wide Llama with weights of std 0.2 is far
# touchier than a trained model: measured 0.024-0.04 (q8_0) and 0.38-0.52 (q4_0). What pins the quantized files
# down is the comparison with the same weights rounded by gguf's quantizers, within 1e-4.
FLOAT_ATOL = {"f16": 3e-2, "f32": 1e-4}  # f16 keeps ~3 significant digits of each weight; logits here reach about +-8
QUANT_RELATIVE = {"q8_0": 0.08, "q4_0": 0.75}
# Bytes a weight: f16 2, Q8_0 34 per block of 32 (an f16 scale and 32 int8), Q4_0 18 per block of 32.
BYTES_PER_WEIGHT = {Q.F32: 4.0, Q.F16: 2.0, Q.Q8_0: 34 / 32, Q.Q4_0: 18 / 32}

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
    """A tied and an untied tiny Llama sharing one tokenizer, with weights big enough that layout mistakes show, and
    a tied one whose ffn_down rows (48) do not fit 32-weight blocks."""
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
    odd = root / "odd"
    config = LlamaConfig.from_pretrained(tied)
    config.intermediate_size = 48
    odd_model = LlamaForCausalLM(config)
    with torch.no_grad():
        for param in odd_model.parameters():
            if param.ndim == 2:
                param.normal_(0, 0.2)
    odd_model.save_pretrained(odd)
    AutoTokenizer.from_pretrained(tied).save_pretrained(odd)
    return {"tied": tied, "untied": untied, "odd": odd}


def expected_type(hf_name: str, shape: tuple[int, ...], weight_type: str, tied: bool) -> gguf.GGMLQuantizationType:
    """llama.cpp's choice: norms f32; q8_0 quantizes every matrix (convert_hf_to_gguf); q4_0 every matrix but the
    output (the token embedding when tied), which llama-quantize keeps at Q6_K or Q8_0 (here Q8_0); rows that
    are not a whole number of 32-weight blocks f16."""
    if len(shape) == 1:
        return Q.F32
    matrices, output = {"f32": (Q.F32, Q.F32), "f16": (Q.F16, Q.F16), "q8_0": (Q.Q8_0, Q.Q8_0), "q4_0": (Q.Q4_0, Q.Q8_0)}[
        weight_type
    ]
    kind = output if hf_name == "lm_head.weight" or (tied and hf_name == "model.embed_tokens.weight") else matrices
    return Q.F16 if kind in (Q.Q8_0, Q.Q4_0) and shape[-1] % 32 else kind


def rounded_model(folder: Path, weight_type: str) -> LlamaForCausalLM:
    """The float model with each weight rounded as the GGUF file should hold it, by gguf's own quantizers."""
    model = LlamaForCausalLM.from_pretrained(folder).eval()
    tied = model.config.tie_word_embeddings
    with torch.no_grad():
        for name, param in model.named_parameters():
            qtype = expected_type(name, tuple(param.shape), weight_type, tied)
            data = param.numpy().astype(np.float32)
            param.copy_(torch.from_numpy(gguf.quants.dequantize(gguf.quants.quantize(data, qtype), qtype).reshape(data.shape)))
    return model


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
    rounded = rounded_model(folder, weight_type)
    got = exported["read_back"][name]
    assert got["tied"] == (variant != "untied")
    for sentence, ids, logits in zip(SENTENCES, got["ids"], got["logits"]):
        assert ids == tokenizer(sentence)["input_ids"], sentence
        logits = torch.tensor(logits)
        with torch.no_grad():
            expected, same_rounding = model(torch.tensor([ids])).logits[0], rounded(torch.tensor([ids])).logits[0]
        torch.testing.assert_close(logits, same_rounding, atol=1e-4, rtol=0)
        if weight_type in FLOAT_ATOL:
            torch.testing.assert_close(logits, expected, atol=FLOAT_ATOL[weight_type], rtol=0)
        else:
            assert float((logits - expected).norm() / expected.norm()) < QUANT_RELATIVE[weight_type]


def test_quantized_files_follow_llama_cpp_and_shrink_by_the_expected_ratio(exported: dict) -> None:
    out_dir = exported["out_dir"]
    data_bytes, types = {}, {}
    for name, (variant, weight_type) in EXPORTS.items():
        reader = gguf.GGUFReader(out_dir / name)
        fields = {key: field.contents() for key, field in reader.fields.items()}
        file_type = {"f32": "ALL_F32", "f16": "MOSTLY_F16", "q8_0": "MOSTLY_Q8_0", "q4_0": "MOSTLY_Q4_0"}[weight_type]
        assert fields["general.file_type"] == gguf.LlamaFileType[file_type], name
        model = LlamaForCausalLM.from_pretrained(exported["folders"][variant])
        names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, model.config.num_hidden_layers)
        tied = model.config.tie_word_embeddings
        want = {
            names.get_name(hf_name, try_suffixes=(".weight",)): expected_type(hf_name, tuple(p.shape), weight_type, tied)
            for hf_name, p in model.named_parameters()
        }
        types[name] = {t.name: t.tensor_type for t in reader.tensors}
        assert types[name] == want, name
        data_bytes[name] = sum(int(t.n_bytes) for t in reader.tensors)
        shapes = {names.get_name(n, try_suffixes=(".weight",)): p.numel() for n, p in model.named_parameters()}
        assert data_bytes[name] == sum(shapes[k] * BYTES_PER_WEIGHT[t] for k, t in want.items()), name
    assert types["odd-q4_0.gguf"]["blk.0.ffn_down.weight"] == Q.F16  # 48-weight rows: the f16 fallback
    assert types["odd-q4_0.gguf"]["blk.0.ffn_up.weight"] == Q.Q4_0
    assert types["untied-q4_0.gguf"]["token_embd.weight"] == Q.Q4_0 and types["untied-q4_0.gguf"]["output.weight"] == Q.Q8_0
    # The files differ from f16 by their weights alone: the same metadata, up to 32 bytes of alignment a tensor.
    sizes = {name: (out_dir / name).stat().st_size for name in EXPORTS}
    for name in ("tied-q8_0.gguf", "tied-q4_0.gguf"):
        saved = sizes["tied-f16.gguf"] - sizes[name]
        assert abs(saved - (data_bytes["tied-f16.gguf"] - data_bytes[name])) <= 32 * 38, name
    # Tensor data against f16: q8_0 34/64 of every matrix; q4_0 18/64, but the tied embedding (12,800 of its 49,664
    # weights) is Q8_0; the norms stay f32 in all three.
    assert data_bytes["tied-q8_0.gguf"] / data_bytes["tied-f16.gguf"] == pytest.approx(0.536, abs=0.005)
    assert data_bytes["tied-q4_0.gguf"] / data_bytes["tied-f16.gguf"] == pytest.approx(0.353, abs=0.005)
    assert sizes["tied-q4_0.gguf"] < sizes["tied-q8_0.gguf"] < sizes["tied-f16.gguf"]


def test_next_token_agreement_counts_positions_over_all_prompts() -> None:
    want = [torch.tensor([1, 2, 3]), torch.tensor([4])]
    assert next_token_agreement(want, want) == 1.0
    assert next_token_agreement(want, [torch.tensor([1, 0, 3]), torch.tensor([0])]) == 0.5


def test_an_unknown_gguf_type_is_refused_naming_the_allowed_ones() -> None:
    with pytest.raises(ConfigError) as refused:
        ExportSettings.from_dict({"gguf_types": "f16, q4_k"})  # what an export job reads its settings with
    assert "gguf_types is 'f16, q4_k'; use one or more of 'f16', 'q8_0', 'q4_0', 'f32'" in str(refused.value)
    with pytest.raises(ConfigError, match="gguf_types is ' '"):
        ExportSettings(gguf_types=" ")
    assert ExportSettings(gguf=False, gguf_types="").gguf_weight_types() == []
    assert ExportSettings(gguf_types="Q8_0 f16,q8_0").gguf_weight_types() == ["q8_0", "f16"]
    assert ExportSettings().gguf_weight_types() == ["f16", "q8_0", "q4_0"]


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
