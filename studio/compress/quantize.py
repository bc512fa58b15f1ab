"""Quantization: ONNX Runtime int8 (the CPU path) and bitsandbytes 8-bit / 4-bit (NF4, FP4).

ONNX Runtime runs the model as an optimised graph; its dynamic int8 quantization stores weights
(embeddings included) as int8 and multiplies in int8, so the file is about a quarter of fp32.
bitsandbytes keeps weights in 8 or 4 bits in memory; on a CPU it dequantizes them for every
product, so it saves memory but not time (on a CUDA GPU it has real kernels).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from studio.compress.base import RunContext, WorkingModel
from studio.errors import UnsupportedError
from studio.settings import Check, Settings

ONNX_OPSET = 17


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
    per_channel: bool = True
    """One scale per output row instead of per matrix: a little larger, usually more accurate."""


class _LogitsOnly(nn.Module):
    """What gets exported: ids and mask in, logits out (no generation cache)."""

    def __init__(self, model: nn.Module, task: str) -> None:
        super().__init__()
        self.model = model
        self.extra = {"use_cache": False} if task == "causal_lm" else {}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, **self.extra).logits


def export_onnx(model: nn.Module, task: str, path: Path) -> Path:
    """Export a transformers model to ONNX with dynamic batch and sequence length."""
    model.eval()
    ids = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6, 0, 0]])
    mask = torch.tensor([[1] * 8, [1] * 6 + [0, 0]])
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            "logits": {0: "batch"} if task == "classification" else {0: "batch", 1: "sequence"}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about shape-dependent Python branches, not user errors
        # an eval() wrapper: the exporter restores the wrapper's mode afterwards, and a fresh module is in train mode
        torch.onnx.export(_LogitsOnly(model, task).eval(), (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
                          output_names=["logits"], dynamic_axes=axes, opset_version=ONNX_OPSET, dynamo=False)
    return path


def keep_float(wm: WorkingModel, ctx: RunContext) -> None:
    """After pruning or healing the float model exists nowhere else: keep it for export (float/)."""
    if ctx.step_number > 1:
        wm.float_source = dataclasses.replace(wm, notes=list(wm.notes))


def to_onnx(wm: WorkingModel, s: OnnxSettings, ctx: RunContext) -> WorkingModel:
    keep_float(wm, ctx)
    wm.onnx_file = export_onnx(wm.model, wm.task, ctx.work_dir / "model.onnx")
    wm.hf_config = wm.model.config
    wm.model, wm.form = OnnxModel(wm.onnx_file, wm.task), "onnx"
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
    wm.onnx_file, wm.model, wm.form = out, OnnxModel(out, wm.task), "onnx"
    wm.notes.append("int8 weights and int8 products in ONNX Runtime (dynamic activation scales)")
    return wm


class OnnxModel(nn.Module):
    """An ONNX Runtime session that answers like a transformers model: ``model(**inputs).logits``.

    ``generate`` is greedy and re-reads the whole sequence each step (the export has no cache).
    """

    def __init__(self, path: Path, task: str) -> None:
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.task = task

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: object) -> SimpleNamespace:
        feeds = {"input_ids": input_ids.cpu().numpy().astype(np.int64),
                 "attention_mask": attention_mask.cpu().numpy().astype(np.int64)}
        return SimpleNamespace(logits=torch.from_numpy(self.session.run(None, feeds)[0]))

    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                 max_new_tokens: int = 32, min_new_tokens: int = 0, eos_token_id: int | None = None,
                 logits_processor=None, **_: object) -> torch.Tensor:
        ids = input_ids
        mask = attention_mask if attention_mask is not None else torch.ones_like(ids)
        for step in range(max_new_tokens):
            scores = self(ids, mask).logits[:, -1]
            next_ids = (logits_processor(ids, scores) if logits_processor else scores).argmax(-1, keepdim=True)
            ids, mask = torch.cat([ids, next_ids], 1), torch.cat([mask, torch.ones_like(next_ids)], 1)
            if eos_token_id is not None and step + 1 >= min_new_tokens and bool((next_ids == eos_token_id).all()):
                break
        return ids


# --------------------------------------------------------------------------- bitsandbytes


@dataclass
class BnbInt8Settings(Settings):
    threshold: float = 6.0
    """LLM.int8 outlier threshold: activations above it are multiplied in 16/32-bit. 6 is the paper's value."""

    def checks(self) -> list[Check]:
        return [("threshold", 0 <= self.threshold <= 100, "from 0 to 100 (6 is usual)")]


@dataclass
class Bnb4bitSettings(Settings):
    quant_type: str = "nf4"
    """'nf4' (NormalFloat, best for normally distributed weights) or 'fp4'."""
    double_quant: bool = True
    """Quantize the scales too: saves about 0.4 bits per weight."""
    compute_dtype: str = "float32"
    """'float32' or 'bfloat16': the precision the dequantized products run in."""

    def checks(self) -> list[Check]:
        return [("quant_type", self.quant_type in ("nf4", "fp4"), "'nf4' or 'fp4'"),
                ("compute_dtype", self.compute_dtype in ("float32", "bfloat16"), "'float32' or 'bfloat16'")]


@dataclass
class BnbFp4Settings(Bnb4bitSettings):
    quant_type: str = "fp4"


HEADS_KEPT_FULL = ["classifier", "score", "lm_head", "pooler"]
"""Task heads stay in full precision: they are tiny and their outputs are the predictions."""


def bnb_config(s: BnbInt8Settings | Bnb4bitSettings):
    from transformers import BitsAndBytesConfig

    if isinstance(s, BnbInt8Settings):
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=s.threshold,
                                  llm_int8_skip_modules=HEADS_KEPT_FULL)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=s.quant_type,
                              bnb_4bit_use_double_quant=s.double_quant,
                              bnb_4bit_compute_dtype=getattr(torch, s.compute_dtype),
                              llm_int8_skip_modules=HEADS_KEPT_FULL)


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
        raise UnsupportedError(f"no bitsandbytes {bits}-bit layer of this model runs on this machine's "
                               f"{bnb_device().upper()}, so nothing would be quantized")
    if failing:
        kept_float = failing
        model = _load_bnb(wm.task, source, s, kept_float)
    try:
        with torch.no_grad():
            logits = model(**inputs).logits
    except (RuntimeError, NotImplementedError, ValueError) as err:
        raise UnsupportedError(f"the bitsandbytes {bits}-bit model does not run on this machine's "
                               f"{bnb_device().upper()} ({type(err).__name__}: {err})") from err
    if not torch.isfinite(logits.float()).all():
        raise UnsupportedError(f"the bitsandbytes {bits}-bit model gives non-finite outputs on this machine")
    wm.model, wm.form = model, "bnb"
    if kept_float:
        wm.notes.append(f"{len(kept_float)} layer(s) bitsandbytes cannot run here kept in full precision "
                        f"({', '.join(kept_float[:4])}{', ...' if len(kept_float) > 4 else ''})")
    if bnb_device() == "cpu":
        wm.notes.append("bitsandbytes on CPU dequantizes weights for every product: smaller in memory, not faster")
    return wm


def _load_bnb(task: str, source: Path, s: BnbInt8Settings | Bnb4bitSettings, kept_float: list[str]):
    from studio.compress.variant import auto_class

    config = bnb_config(s)
    config.llm_int8_skip_modules = HEADS_KEPT_FULL + kept_float
    try:
        return auto_class(task).from_pretrained(source, quantization_config=config, device_map=bnb_device(),
                                                trust_remote_code=False, use_safetensors=True)
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
