"""One-click export: the chosen model of a finished run as a zip anyone can use without the studio.

    README.md        model card (YAML metadata): teacher, data summary (no rows), method, metrics, limits
    model/           plain Hugging Face folder: config, safetensors, tokenizer (LoRA already merged)
    onnx/model.onnx  the same model for ONNX Runtime (an ONNX variant: the variant itself)
    gguf/*.gguf      text generators of the Llama family, for llama.cpp-compatible runtimes
    teacher/         with the hybrid option: the teacher, for inputs the student is unsure of
    predict.py       a short example that runs all of the above; export.json its settings

Every file is checked against the model it came from before the zip is written, and the zip is
written to a temp name and renamed, so a crash never leaves a half-written export.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from studio.settings import Check, Settings

EXPORT_JSON = "export.json"


@dataclass
class ExportSettings(Settings):
    variant: str = "student"
    """Which model of the run: 'student', 'teacher' or the name of a variant."""
    onnx: bool = True
    """Add an ONNX file (runs under onnxruntime, no PyTorch needed)."""
    gguf: bool = True
    """Add a GGUF file for text generators of the Llama family (ignored for classifiers)."""
    hybrid: bool = False
    """Add the teacher and a confidence threshold: the student answers first, the teacher when it is unsure."""
    threshold: float | None = None
    """The hybrid's confidence threshold (0-1); empty: chosen from the validation split."""

    def checks(self) -> list[Check]:
        return [("variant", bool(self.variant.strip()), "'student', 'teacher' or a variant name"),
                ("threshold", self.threshold is None or 0.0 <= self.threshold <= 1.0, "a number from 0 to 1, or empty")]


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


def export_model(run_dir: str | Path, settings: ExportSettings, out_zip: str | Path, **kw) -> ExportResult:
    """Write the zip for ``settings.variant`` of the finished run in ``run_dir`` (see bundle.export_model)."""
    from studio.export.bundle import export_model as export

    return export(run_dir, settings, out_zip, **kw)
