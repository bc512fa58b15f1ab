"""What an export is asked for, and what it made."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from studio.export.gguf import WEIGHT_TYPES
from studio.settings import Check, Settings, setting

EXPORT_JSON = "export.json"


@dataclass
class ExportSettings(Settings):
    variant: str = setting("student", "Which model of the run: 'student', 'teacher' or a variant's name.")
    onnx: bool = setting(
        True, "Add an ONNX file (runs under onnxruntime, no PyTorch needed).", label="ONNX file (runs without PyTorch)"
    )
    gguf: bool = setting(
        True,
        "Add GGUF files for text generators of the Llama family (ignored for classifiers); gguf_types says which.",
        label="GGUF file (Llama-style text generators)",
    )
    hybrid: bool = setting(
        False,
        "Add the teacher and a confidence threshold: the student answers first, the teacher when it is unsure.",
        label="Add the teacher: small model first, teacher when unsure",
    )
    threshold: float | None = setting(
        None,
        "The hybrid's confidence threshold, 0-1; empty: chosen from the validation split.",
        label="Confidence threshold, 0-1 (empty: chosen for you)",
    )
    gguf_types: str = setting(
        "f16, q8_0, q4_0",
        "Which GGUF files to write, separated by commas: f16 (half the float32 size, the same answers), q8_0 (about a "
        "quarter, nearly the same answers), q4_0 (about a sixth, answers drift most: the card says how much), f32.",
        label="GGUF weight types (f16, q8_0, q4_0, f32)",
    )

    def checks(self) -> list[Check]:
        return [
            ("variant", bool(self.variant.strip()), "'student', 'teacher' or a variant name"),
            ("threshold", self.threshold is None or 0.0 <= self.threshold <= 1.0, "a number from 0 to 1, or empty"),
            (
                "gguf_types",
                (bool(self.gguf_weight_types()) or not self.gguf) and set(self.gguf_weight_types()) <= set(WEIGHT_TYPES),
                "one or more of " + ", ".join(f"'{t}'" for t in WEIGHT_TYPES) + ", separated by commas",
            ),
        ]

    def gguf_weight_types(self) -> list[str]:
        """The GGUF weight types asked for, each once, in the order given."""
        return list(dict.fromkeys(t.lower() for t in re.split(r"[,\s]+", self.gguf_types) if t))


@dataclass
class ExportResult:
    zip_path: Path
    bytes: int
    files: dict[str, str]
    """Path inside the zip -> what it is."""
    hybrid: dict | None = None
    notes: list[str] = field(default_factory=list)
    checks: dict[str, float] = field(default_factory=dict)
    """Largest logit difference of each exported format against the model it came from ('model', 'onnx'); for each
    GGUF file, '<path> bytes' (its size) and '<path> agreement' (the share of next tokens it predicts as the float
    model does, see gguf_check)."""
