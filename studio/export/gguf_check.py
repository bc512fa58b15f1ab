"""How closely a GGUF file answers like the float model it was written from.

Each file is loaded back with transformers (which dequantizes it, as a user of transformers would load it) and
run on held-out prompts beside the float model, both on the same token ids. The measure is greedy next-token
agreement: the share of prompt positions where the file's most likely next token is the float model's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gguf
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

FIXED_PROMPTS = (
    "How do I return an item I bought last week?",
    "Where is my parcel? The tracking page has not changed for three days.",
    "Can I change the delivery address after the order has shipped?",
    "Write a short, friendly reply to a customer whose card was charged twice.",
    "The quick brown fox jumps over the lazy dog because",
    "Explain in one sentence what a refund is.",
    "List three ways to keep a password safe:",
    "Once upon a time, in a small town by the sea,",
)
"""Used when the run has no held-out test prompts to measure on."""
PROMPTS = 20
"""How many held-out prompts are measured: enough for a stable share, few enough for seconds per file."""
MAX_TOKENS = 64


@dataclass
class Prompts:
    texts: list[str]
    source: str
    """What they are, in words for the card ('20 held-out test prompts of the run')."""


@dataclass
class GgufCheck:
    weight_type: str
    file: Path
    bytes: int
    agreement: float
    """Share of prompt positions where this file's greedy next token is the float model's, 0-1."""
    positions: int
    f16_matrices: list[str]
    """Matrices written in f16 because their rows are not a whole number of the type's blocks."""


def agreement_prompts(test_rows: list[dict]) -> Prompts:
    """Up to PROMPTS held-out prompts of the run (the prompt of a prompt/response row, else its text); the fixed
    prompts when it has none."""
    texts = [t for t in ((r.get("prompt") or r.get("text") or "").strip() for r in test_rows) if t][:PROMPTS]
    if texts:
        return Prompts(texts, f"{len(texts)} held-out test prompts of the run")
    return Prompts(list(FIXED_PROMPTS), f"{len(FIXED_PROMPTS)} fixed example prompts (the run has no test prompts)")


def measure_gguf_files(
    paths: dict[str, Path], float_folder: Path, float_model: torch.nn.Module, prompts: Prompts
) -> list[GgufCheck]:
    """Each GGUF file (weight type -> path) against ``float_model`` (loaded from ``float_folder``) on ``prompts``."""
    tokenizer = AutoTokenizer.from_pretrained(float_folder)
    ids = [tokenizer(text, truncation=True, max_length=MAX_TOKENS)["input_ids"] for text in prompts.texts]
    want = greedy_tokens(float_model.eval(), ids)
    return [check_gguf(path, weight_type, want, ids) for weight_type, path in paths.items()]


@torch.inference_mode()
def greedy_tokens(model: torch.nn.Module, ids: list[list[int]]) -> list[torch.Tensor]:
    """The most likely next token at every position of each prompt: one (len(prompt),) tensor a prompt."""
    return [model(torch.tensor([one])).logits[0].argmax(-1) for one in ids]


def next_token_agreement(want: list[torch.Tensor], got: list[torch.Tensor]) -> float:
    """Share of positions, over all prompts, where ``got`` names the same token as ``want``."""
    same = sum(int((w == g).sum()) for w, g in zip(want, got, strict=True))
    return same / max(1, sum(len(w) for w in want))


def check_gguf(path: Path, weight_type: str, want: list[torch.Tensor], ids: list[list[int]]) -> GgufCheck:
    """Load ``path`` back with transformers and compare its greedy next tokens with ``want`` (the float model's)."""
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    agreement = next_token_agreement(want, greedy_tokens(model, ids))
    del model
    quantized = weight_type not in ("f32", "f16")
    tensors = gguf.GGUFReader(path).tensors
    fallback = [t.name for t in tensors if quantized and t.tensor_type == gguf.GGMLQuantizationType.F16]
    return GgufCheck(weight_type, path, path.stat().st_size, agreement, sum(len(w) for w in want), fallback)
