"""Quantization: ONNX Runtime int8 (the CPU path) and bitsandbytes 8-bit / 4-bit (NF4, FP4).

ONNX Runtime runs the model as an optimised graph; its dynamic int8 quantization stores weights
(embeddings included) as int8 and multiplies in int8, so the file is about a quarter of fp32.
bitsandbytes keeps weights in 8 or 4 bits in memory; on a CPU it dequantizes them for every
product, so it saves memory but not time (on a CUDA GPU it has real kernels).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from studio.bnb import HEADS_KEPT_FULL, Bnb4bitSettings, BnbInt8Settings, bnb_config, bnb_device, bnb_unsupported
from studio.compress.base import RunContext, WorkingModel
from studio.errors import UnsupportedError
from studio.models import auto_class
from studio.onnx import OnnxModel, export_onnx
from studio.settings import Settings, setting
from studio.words import ModelForm

# --------------------------------------------------------------------------- bfloat16


@dataclass
class Bf16Settings(Settings):
    """bfloat16 weights: half the size of float32 and, within rounding, the same answers. Faster only where the
    processor has bfloat16 instructions (recent x86 with AVX-512 BF16 or AMX, recent ARM, GPUs); elsewhere it can
    be slower than float32, which is why every variant's speed is measured on the machine it runs on."""


def to_bf16(wm: WorkingModel, s: Bf16Settings, ctx: RunContext) -> WorkingModel:
    wm.model = wm.model.to(torch.bfloat16)
    wm.notes.append("bfloat16 weights (half of float32); fast only on processors with bfloat16 instructions")
    return wm


# --------------------------------------------------------------------------- ONNX Runtime


@dataclass
class OnnxSettings(Settings):
    """ONNX Runtime, float32: the same weights, run by an optimised graph engine instead of PyTorch."""


@dataclass
class OnnxInt8Settings(Settings):
    per_channel: bool = setting(True, "One scale per output row instead of per matrix: a little larger, usually more accurate.")


def keep_float(wm: WorkingModel, ctx: RunContext) -> None:
    """After pruning or healing the float model exists nowhere else: keep it for export (float/)."""
    if ctx.step_number > 1:
        wm.float_source = dataclasses.replace(wm, notes=list(wm.notes))


def to_onnx(wm: WorkingModel, s: OnnxSettings, ctx: RunContext) -> WorkingModel:
    keep_float(wm, ctx)
    wm.onnx_file = export_onnx(wm.model, wm.task, ctx.work_dir / "model.onnx")
    wm.hf_config = wm.model.config
    wm.model, wm.form = OnnxModel(wm.onnx_file, wm.task), ModelForm.ONNX
    return wm


def quantize_onnx_int8(wm: WorkingModel, s: OnnxInt8Settings, ctx: RunContext) -> WorkingModel:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    keep_float(wm, ctx)
    float_file = export_onnx(wm.model, wm.task, ctx.work_dir / "float.onnx")
    out = ctx.work_dir / "model.onnx"
    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # onnxruntime logs a generic pre-processing hint at WARNING
    try:
        quantize_dynamic(str(float_file), str(out), weight_type=QuantType.QInt8, per_channel=s.per_channel)
    finally:
        logging.getLogger().setLevel(quiet)
    float_file.unlink()
    wm.hf_config = wm.model.config
    wm.onnx_file, wm.model, wm.form = out, OnnxModel(out, wm.task), ModelForm.ONNX
    wm.notes.append("int8 weights and int8 products in ONNX Runtime (dynamic activation scales)")
    return wm


# --------------------------------------------------------------------------- bitsandbytes


def quantize_bnb(wm: WorkingModel, s: BnbInt8Settings | Bnb4bitSettings, ctx: RunContext) -> WorkingModel:
    """Reload the model's weights through bitsandbytes (transformers quantizes them on load), then run it on real
    inputs before calling it made. Layers whose kernel fails on this CPU (bitsandbytes picks kernels by CPU
    features: with AVX-512, 4-bit layers narrower than a quantization block fail) stay in full precision."""
    bits = 8 if isinstance(s, BnbInt8Settings) else 4
    reason = bnb_unsupported(bits)
    if reason:
        raise UnsupportedError(reason)
    source = ctx.work_dir / "float"
    wm.model.save_pretrained(source)
    batch = next(ctx.calibration_batches(wm.tokenizer, 1))
    inputs = {k: batch[k][:4].to(bnb_device()) for k in ("input_ids", "attention_mask")}
    kept_float: list[str] = []
    model = _load_bnb(wm.task, source, s, kept_float)
    failing, quantized = _failing_layers(model)
    if failing and len(failing) == quantized:
        raise UnsupportedError(
            f"no bitsandbytes {bits}-bit layer of this model runs on this machine's "
            f"{bnb_device().upper()}, so nothing would be quantized"
        )
    if failing:
        kept_float = failing
        model = _load_bnb(wm.task, source, s, kept_float)
    try:
        with torch.no_grad():
            logits = model(**inputs).logits
    except (RuntimeError, NotImplementedError, ValueError) as err:
        raise UnsupportedError(
            f"the bitsandbytes {bits}-bit model does not run on this machine's "
            f"{bnb_device().upper()} ({type(err).__name__}: {err})"
        ) from err
    if not torch.isfinite(logits.float()).all():
        raise UnsupportedError(f"the bitsandbytes {bits}-bit model gives non-finite outputs on this machine")
    wm.model, wm.form = model, ModelForm.BNB
    if kept_float:
        wm.notes.append(
            f"{len(kept_float)} layer(s) bitsandbytes cannot run here kept in full precision "
            f"({', '.join(kept_float[:4])}{', ...' if len(kept_float) > 4 else ''})"
        )
    if bnb_device() == "cpu":
        wm.notes.append("bitsandbytes on CPU dequantizes weights for every product: smaller in memory, not faster")
    return wm


def _load_bnb(task: str, source: Path, s: BnbInt8Settings | Bnb4bitSettings, kept_float: list[str]):
    config = bnb_config(s)
    config.llm_int8_skip_modules = HEADS_KEPT_FULL + kept_float
    try:
        return auto_class(task).from_pretrained(
            source, quantization_config=config, device_map=bnb_device(), trust_remote_code=False, use_safetensors=True
        )
    except (RuntimeError, NotImplementedError, ValueError) as err:
        raise UnsupportedError(f"bitsandbytes could not quantize this model here ({err})") from err


def _failing_layers(model: nn.Module) -> tuple[list[str], int]:
    """(the quantized layers that fail on an input of their own width, by name; how many layers are quantized)."""
    import bitsandbytes as bnb

    failing, quantized = [], 0
    for name, module in model.named_modules():
        if isinstance(module, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)):
            quantized += 1
            try:
                with torch.no_grad():
                    module(torch.randn(2, module.in_features, device=bnb_device()))
            except (RuntimeError, NotImplementedError, ValueError):
                failing.append(name)
    return failing, quantized
