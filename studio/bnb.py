"""bitsandbytes on this machine: its settings, its quantization config, and whether it runs here at all.

A hardware question asked by two stages: compress (8/4-bit variants) and distill (QLoRA's 4-bit base).
bitsandbytes picks kernels by the processor's features, so "does it run" is answered by running it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from studio.settings import Check, Settings, setting


@dataclass
class BnbInt8Settings(Settings):
    threshold: float = setting(
        6.0, "LLM.int8 outlier threshold: activations above it are multiplied in 16/32-bit. 6 is the paper's value."
    )

    def checks(self) -> list[Check]:
        return [("threshold", 0 <= self.threshold <= 100, "from 0 to 100 (6 is usual)")]


@dataclass
class Bnb4bitSettings(Settings):
    quant_type: str = setting(
        "nf4", "'nf4' (NormalFloat, best for normally distributed weights) or 'fp4'.", choices=("nf4", "fp4")
    )
    double_quant: bool = setting(True, "Quantize the scales too: saves about 0.4 bits per weight.")
    compute_dtype: str = setting(
        "float32", "'float32' or 'bfloat16': the precision the dequantized products run in.", choices=("float32", "bfloat16")
    )


@dataclass
class BnbFp4Settings(Bnb4bitSettings):
    quant_type: str = setting("fp4", "'fp4' (4-bit floating point) or 'nf4' (NormalFloat).", choices=("nf4", "fp4"))


HEADS_KEPT_FULL = ["classifier", "score", "lm_head", "pooler"]
"""Task heads stay in full precision: they are tiny and their outputs are the predictions."""


def bnb_config(s: BnbInt8Settings | Bnb4bitSettings):
    from transformers import BitsAndBytesConfig

    if isinstance(s, BnbInt8Settings):
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=s.threshold, llm_int8_skip_modules=HEADS_KEPT_FULL)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=s.quant_type,
        bnb_4bit_use_double_quant=s.double_quant,
        bnb_4bit_compute_dtype=getattr(torch, s.compute_dtype),
        llm_int8_skip_modules=HEADS_KEPT_FULL,
    )


def bnb_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


@functools.cache
def bnb_unsupported(bits: int) -> str | None:
    """Why bitsandbytes cannot run ``bits``-bit layers on this machine (None when it can): a real probe."""
    try:
        import bitsandbytes as bnb
    except Exception as err:  # noqa: BLE001 - any import failure means "not on this machine"
        return f"bitsandbytes cannot be imported here ({err}); install it with pip install bitsandbytes"
    device = bnb_device()
    try:
        if bits == 8:
            layer = bnb.nn.Linear8bitLt(64, 64, has_fp16_weights=False, threshold=6.0)
        else:
            layer = bnb.nn.Linear4bit(64, 64, compute_dtype=torch.float32, quant_type="nf4")
        layer = layer.to(device)
        layer(torch.randn(2, 64, device=device))
    except Exception as err:  # noqa: BLE001 - the probe's whole point is to turn any failure into a reason
        return f"bitsandbytes {bits}-bit layers do not run on this machine's {device.upper()} ({type(err).__name__}: {err})"
    return None
