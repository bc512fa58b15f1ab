"""The words used everywhere, as types: a typo is an error at import, not a silent mismatch at run time.

They are ``StrEnum``s, so each member is also its plain string: what JSON files, the database and the
standalone ``predict.py`` of an export read and write is unchanged.
"""

from __future__ import annotations

from enum import StrEnum


class Task(StrEnum):
    CLASSIFICATION = "classification"
    """Texts with labels: the model picks a label."""
    CAUSAL_LM = "causal_lm"
    """Prompts with answers (or plain text): the model writes."""


class ModelForm(StrEnum):
    """How a model's files run."""

    TORCH = "torch"
    """A transformers folder (safetensors)."""
    BNB = "bnb"
    """A bitsandbytes-quantized transformers folder."""
    ONNX = "onnx"
    """An ONNX Runtime graph."""


class VariantStatus(StrEnum):
    """Whether a compressed variant was made."""

    OK = "ok"
    """Made, and run on real inputs before it was called ok."""
    UNSUPPORTED = "unsupported"
    """This machine cannot make or run it (the reason says why)."""
    FAILED = "failed"
    """Making it broke (the reason, and error.log beside it, say how)."""
