"""Write a Llama-style causal LM folder as one GGUF file, for llama.cpp-compatible runtimes (llama.cpp, Ollama, ...).

Follows what llama.cpp's convert_hf_to_gguf.py does for LlamaModel with a byte-level BPE ("gpt2") vocabulary:
the same metadata keys, tensor names, q/k row order and token types, so runtimes read it like one that script made.

Weight types (``WEIGHT_TYPES``): f32, f16, q8_0 and q4_0, quantized with the gguf package's own quantizers. The
4-bit type is Q4_0, not Q4_K: gguf 0.19 can quantize Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 but only *de*quantize the
K-quants, and Q4_K's 256-wide blocks would not fit SmolLM2's 576-wide rows anyway (llama.cpp itself falls back to
Q5_0 for such rows). Which tensor gets which type follows llama.cpp: 1-D tensors (norms) stay f32; q8_0 quantizes
every matrix, the token embedding and the output too (convert_hf_to_gguf); q4_0 quantizes every matrix but the
output (or the token embedding when it is shared with the output), which llama-quantize keeps at Q6_K, or Q8_0 when
its rows do not fit Q6_K's blocks. gguf cannot write Q6_K, so here it is always Q8_0. A matrix whose rows are not a
whole number of blocks (32 weights for Q8_0 and Q4_0) is written in f16 instead, as convert_hf_to_gguf does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
from safetensors import safe_open
from tokenizers import Tokenizer

from studio.errors import UnsupportedError

_INSTEAD = "GGUF is for Llama-style text generators; use the ONNX or safetensors files in the export instead."
# Llama 3's split, which llama.cpp calls "llama-bpe"; any other custom split would tokenize differently there.
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_Q = gguf.GGMLQuantizationType


@dataclass(frozen=True)
class _Plan:
    """What one weight type writes: the file type it declares, the type of the matrices and of the output matrix."""

    file_type: gguf.LlamaFileType
    matrices: gguf.GGMLQuantizationType
    output: gguf.GGMLQuantizationType
    """output.weight, or token_embd.weight when the output shares it (llama.cpp quantizes it as the output)."""
    words: str


_PLANS = {
    "f16": _Plan(gguf.LlamaFileType.MOSTLY_F16, _Q.F16, _Q.F16, "f16"),
    "q8_0": _Plan(gguf.LlamaFileType.MOSTLY_Q8_0, _Q.Q8_0, _Q.Q8_0, "Q8_0, 8-bit"),
    "q4_0": _Plan(gguf.LlamaFileType.MOSTLY_Q4_0, _Q.Q4_0, _Q.Q8_0, "Q4_0, 4-bit, its output matrix Q8_0"),
    "f32": _Plan(gguf.LlamaFileType.ALL_F32, _Q.F32, _Q.F32, "float32"),
}
WEIGHT_TYPES = {name: plan.words for name, plan in _PLANS.items()}
"""The weight types write_gguf writes, by the name used in file names (model-q8_0.gguf), and in words."""


def _refuse(why: str) -> UnsupportedError:
    return UnsupportedError(f"Cannot write a GGUF file: {why}. {_INSTEAD}")


def _check_config(config: dict) -> None:
    if config.get("model_type") != "llama":
        raise _refuse(f"this is a {config.get('model_type', 'unknown')!r} model, not a Llama-style text generator")
    sizes = ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "num_hidden_layers")
    if odd := [k for k in sizes if k in config and not isinstance(config[k], int)]:
        raise _refuse(f"{', '.join(odd)} change from layer to layer, which llama.cpp's Llama loader cannot read")
    if config.get("hidden_act", "silu") != "silu":
        raise _refuse(f"the model uses the {config['hidden_act']!r} activation; llama.cpp's Llama expects 'silu'")
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        raise _refuse("the model uses scaled rotary positions, which this exporter does not write yet")


def _pre_tokenizer(tok: dict) -> str:
    """llama.cpp's name for how this tokenizer splits text before BPE (convert_hf_to_gguf finds it by hash)."""
    pre = tok.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    kinds = [step.get("type") for step in steps]
    first, last = (steps[0], steps[-1]) if steps else ({}, {})
    # llama.cpp applies no normalizer and never adds a leading space to a byte-level vocabulary.
    if tok.get("model", {}).get("type") == "BPE" and not tok.get("normalizer") and not last.get("add_prefix_space"):
        if kinds == ["ByteLevel"] and last.get("use_regex", True):
            return "gpt-2"
        if kinds == ["Digits", "ByteLevel"] and first.get("individual_digits") and last.get("use_regex", True):
            return "smollm"
        if kinds == ["Split", "ByteLevel"] and first.get("pattern", {}).get("Regex") == _LLAMA3_SPLIT:
            return "llama-bpe"
    raise _refuse("its tokenizer is not a byte-level BPE tokenizer of a kind llama.cpp knows")


def _vocab(tok: dict, size: int) -> tuple[list[str], list[int]]:
    """One token per embedding row, typed as convert_hf_to_gguf types them."""
    tokens = {index: text for text, index in tok["model"]["vocab"].items()}
    types = dict.fromkeys(tokens, gguf.TokenType.NORMAL)
    for added in tok.get("added_tokens", []):
        tokens[added["id"]] = added["content"]
        types[added["id"]] = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
    if max(tokens) >= size:
        raise _refuse(f"the tokenizer has token ids up to {max(tokens)} but the model only has {size} embeddings")
    # Rows no token maps to still need an entry; llama.cpp checks the list length against the embedding.
    return ([tokens.get(i, f"[PAD{i}]") for i in range(size)], [types.get(i, gguf.TokenType.UNUSED) for i in range(size)])


def _permute(weight: np.ndarray, heads: int) -> np.ndarray:
    """HF stores each head's rotary halves apart; llama.cpp wants them interleaved (convert_hf_to_gguf's permute)."""
    halves = weight.reshape(heads, 2, weight.shape[0] // heads // 2, *weight.shape[1:])
    return halves.swapaxes(1, 2).reshape(weight.shape)


def _tensors(folder: Path, config: dict) -> Iterator[tuple[str, np.ndarray]]:
    files = sorted(folder.glob("model*.safetensors"))
    if not files:
        raise _refuse(f"there are no model*.safetensors weights in {folder}")
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config["num_hidden_layers"])
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    # Skipped: rotary caches (the runtime recomputes them) and a tied lm_head (the same matrix as token_embd).
    skip = {"lm_head.weight"} if config.get("tie_word_embeddings") else set()
    for file in files:
        with safe_open(str(file), framework="pt") as f:  # pt, not numpy: numpy has no bfloat16
            for hf_name in f.keys():
                if hf_name in skip or hf_name.endswith("rotary_emb.inv_freq"):
                    continue
                name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
                if name is None:
                    raise _refuse(f"it has a weight {hf_name!r} that a Llama model does not have")
                data = f.get_tensor(hf_name).float().numpy()
                if ".q_proj." in hf_name:
                    data = _permute(data, heads)
                elif ".k_proj." in hf_name:
                    data = _permute(data, kv_heads)
                yield name, data


def _encode(name: str, data: np.ndarray, plan: _Plan, tied: bool) -> tuple[np.ndarray, gguf.GGMLQuantizationType]:
    """The tensor as written, and its type (see the module docstring for which tensor gets which)."""
    if data.ndim < 2:
        return data.astype(np.float32), _Q.F32
    output = name == "output.weight" or (tied and name == "token_embd.weight")
    qtype = plan.output if output else plan.matrices
    try:
        return gguf.quants.quantize(data, qtype), qtype
    except gguf.QuantError:  # rows not a whole number of blocks
        return data.astype(np.float16), _Q.F16


def write_gguf(model_folder: Path, out_file: Path, *, weight_type: str = "f16") -> Path:
    """Write `model_folder` (a saved Llama causal LM) to `out_file`, its matrices in `weight_type` (one of
    WEIGHT_TYPES), norms in f32; a matrix whose rows do not fit the type's blocks in f16."""
    if weight_type not in _PLANS:
        raise ValueError(f"weight_type must be one of {', '.join(WEIGHT_TYPES)}, not {weight_type!r}")
    plan = _PLANS[weight_type]
    model_folder, out_file = Path(model_folder), Path(out_file)
    config_file, tok_file = model_folder / "config.json", model_folder / "tokenizer.json"
    if not config_file.is_file():
        raise _refuse(f"{model_folder} has no config.json, so it is not a saved Hugging Face model")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    _check_config(config)  # first, so a non-Llama model is named as such whatever else it lacks
    if not tok_file.is_file():
        raise _refuse("the model folder has no tokenizer.json, which the GGUF vocabulary is built from")
    tok = json.loads(tok_file.read_text(encoding="utf-8"))
    pre = _pre_tokenizer(tok)
    tokens, token_types = _vocab(tok, config["vocab_size"])
    heads = config["num_attention_heads"]
    rope = config.get("rope_parameters") or {}

    out_file.parent.mkdir(parents=True, exist_ok=True)
    partial = out_file.with_name(f".{out_file.name}.partial")  # same folder, so os.replace is atomic
    try:
        writer = gguf.GGUFWriter(partial, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
        writer.add_type(gguf.GGUFType.MODEL)
        writer.add_name(model_folder.name)
        writer.add_vocab_size(config["vocab_size"])
        writer.add_context_length(config["max_position_embeddings"])
        writer.add_embedding_length(config["hidden_size"])
        writer.add_block_count(config["num_hidden_layers"])
        writer.add_feed_forward_length(config["intermediate_size"])
        writer.add_head_count(heads)
        writer.add_head_count_kv(config.get("num_key_value_heads") or heads)
        head_dim = config.get("head_dim") or config["hidden_size"] // heads
        writer.add_rope_dimension_count(head_dim)
        writer.add_key_length(head_dim)  # as convert_hf_to_gguf; needed when head_dim is not hidden / heads
        writer.add_value_length(head_dim)
        writer.add_rope_freq_base(float(rope.get("rope_theta", config.get("rope_theta", 10000.0))))
        writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
        writer.add_file_type(plan.file_type)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(pre)
        writer.add_token_list(tokens)
        writer.add_token_types(token_types)
        # Merges, bos/eos/unk/pad ids, add_bos and the chat template, read the way convert_hf_to_gguf reads them.
        special = gguf.SpecialVocab(model_folder, load_merges=True, n_vocab=len(tokens))
        # Say outright whether BOS is added, so runtimes don't fall back to their own default.
        mask = Tokenizer.from_file(str(tok_file)).encode("Hello").special_tokens_mask
        special.add_special_token.setdefault("bos", bool(mask) and mask[0] == 1)
        special.add_to_gguf(writer, quiet=True)
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        tied = bool(config.get("tie_word_embeddings"))
        for name, data in _tensors(model_folder, config):
            encoded, qtype = _encode(name, data, plan, tied)
            writer.add_tensor(name, encoded, raw_dtype=qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(partial, out_file)
    finally:
        partial.unlink(missing_ok=True)
    return out_file
