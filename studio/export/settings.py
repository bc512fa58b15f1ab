"""What an export is asked for, and what it made."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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
        "Add a GGUF file for text generators of the Llama family (ignored for classifiers).",
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

    def checks(self) -> list[Check]:
        return [
            ("variant", bool(self.variant.strip()), "'student', 'teacher' or a variant name"),
            ("threshold", self.threshold is None or 0.0 <= self.threshold <= 1.0, "a number from 0 to 1, or empty"),
        ]


@dataclass
class ExportResult:
    zip_path: Path
    bytes: int
    files: dict[str, str]
    """Path inside the zip -> what it is."""
    hybrid: dict | None = None
    notes: list[str] = field(default_factory=list)
    checks: dict[str, float] = field(default_factory=dict)
    """Largest logit difference of each exported format against the model it came from."""
