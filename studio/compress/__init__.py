"""Compress step: quantization and pruning methods, one settings class and one function each.

``METHODS`` maps a name (what the UI and CLI list) to its entry. A recipe is a list of steps,
``[{"method": "prune-heads", "fraction": 0.3}, {"method": "heal"}, {"method": "int8"}]``, applied
in order to a run's student (or teacher, or an earlier variant); a quantize step ends it.
"""

from __future__ import annotations

from studio.bnb import Bnb4bitSettings, BnbFp4Settings, BnbInt8Settings
from studio.compress.base import Method
from studio.compress.heal import HealSettings, heal
from studio.compress.prune import (
    LayerSettings,
    MagnitudeSettings,
    StructuredSettings,
    plan_heads,
    plan_layers,
    plan_neurons,
    prune_heads,
    prune_layers,
    prune_magnitude,
    prune_neurons,
)
from studio.compress.quantize import (
    Bf16Settings,
    OnnxInt8Settings,
    OnnxSettings,
    quantize_bnb,
    quantize_onnx_int8,
    to_bf16,
    to_onnx,
)

METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method(
            "int8",
            "quantize",
            OnnxInt8Settings,
            quantize_onnx_int8,
            "CPU int8 (ONNX Runtime): about 4x smaller, int8 products, the CPU-only choice",
            low_bit=True,
        ),
        Method(
            "bf16",
            "quantize",
            Bf16Settings,
            to_bf16,
            "bfloat16 weights: half the size, the same answers; about 2x faster on CPUs with bfloat16 instructions",
        ),
        Method(
            "onnx",
            "quantize",
            OnnxSettings,
            to_onnx,
            "ONNX Runtime float32: same weights, run by a faster engine (no quantization)",
        ),
        Method(
            "bnb-int8",
            "quantize",
            BnbInt8Settings,
            quantize_bnb,
            "bitsandbytes LLM.int8: 8-bit weights; on CPU smaller in memory, not faster",
            low_bit=True,
        ),
        Method(
            "bnb-nf4",
            "quantize",
            Bnb4bitSettings,
            quantize_bnb,
            "bitsandbytes 4-bit NormalFloat (QLoRA's format), optional double quantization",
            low_bit=True,
        ),
        Method("bnb-fp4", "quantize", BnbFp4Settings, quantize_bnb, "bitsandbytes 4-bit float", low_bit=True),
        Method(
            "magnitude",
            "prune",
            MagnitudeSettings,
            prune_magnitude,
            "unstructured: zero the smallest weights model-wide; smaller stored sparse, not faster",
        ),
        Method(
            "prune-heads",
            "prune",
            StructuredSettings,
            prune_heads,
            "structured: remove the least important attention heads in every layer (faster)",
            plan_heads,
        ),
        Method(
            "prune-neurons",
            "prune",
            StructuredSettings,
            prune_neurons,
            "structured: remove the least important MLP neurons in every layer (faster)",
            plan_neurons,
        ),
        Method(
            "prune-layers",
            "prune",
            LayerSettings,
            prune_layers,
            "structured: remove whole layers, the ones the loss misses least (faster)",
            plan_layers,
        ),
        Method("heal", "heal", HealSettings, heal, "short KD on the cached teacher logits to win back what pruning lost"),
    ]
}

__all__ = [
    "METHODS",
    "Method",
    "Bf16Settings",
    "HealSettings",
    "LayerSettings",
    "MagnitudeSettings",
    "StructuredSettings",
    "Bnb4bitSettings",
    "BnbFp4Settings",
    "BnbInt8Settings",
    "OnnxInt8Settings",
    "OnnxSettings",
]
