"""A run's folder: where each of its files is, and config.json, written before anything runs.

    run/config.json        the settings asked for and as run, the task, the labels and the plan
    run/teacher/           the teacher fine-tuned here (absent when a catalog teacher is used as it is)
    run/cache/             the teacher's logits on the training texts
    run/checkpoints/       one folder per training stage, for resume
    run/student/           the distilled student
    run/student_labels_only/  with --labels-only: the same student trained on the labels alone
    run/teacher.json       which teacher the run used: its folder, its name, the model it was tuned from
    run/variants/<name>/   compressed variants, each with its variant.json manifest
    run/metrics.jsonl      one line per training step, append-only

``RunPaths.find_model`` is the one way to get a model of a run by name, with the same checks everywhere.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from studio.dataset import PreparedDataset
from studio.errors import CheckpointError, ConfigError, ModelLoadError
from studio.paths import is_saved
from studio.settings import Settings

MANIFEST = "variant.json"
LABELS_ONLY = "student-labels-only"
"""The same student trained on the labels alone (no teacher), as it appears among a run's models: what
distillation adds is the difference."""
VARIANT_NAME = re.compile(r"[a-z0-9][a-z0-9.+_-]*")


@dataclass(frozen=True)
class RunModel:
    """One model of a run, found by name: where its files are and in what form."""

    name: str
    form: str
    """'torch' (a transformers folder), 'bnb' (bitsandbytes-quantized) or 'onnx'."""
    folder: Path
    manifest: dict | None = None
    """A variant's variant.json; None for the run's own models."""


class RunPaths:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.config = self.root / "config.json"
        self.teacher = self.root / "teacher"
        self.cache = self.root / "cache" / "teacher_logits.safetensors"
        self.checkpoints = self.root / "checkpoints"
        self.student = self.root / "student"
        self.labels_only = self.root / "student_labels_only"
        self.metrics = self.root / "metrics.jsonl"
        self.teacher_json = self.root / "teacher.json"
        self.variants = self.root / "variants"

    def teacher_info(self) -> dict:
        """{'path': the teacher's folder, 'name': as asked, 'base': the model it was tuned from}."""
        if not self.teacher_json.exists():
            raise ConfigError([f"the run in {self.root} has not finished setting up its teacher; resume it first"])
        return json.loads(self.teacher_json.read_text())

    def record_teacher(self, path: str, name: str, base: str) -> None:
        write_json(self.teacher_json, {"path": path, "name": name, "base": base})

    def variant_names(self) -> list[str]:
        """Variants saved in this run (made, unsupported or failed), by name."""
        return sorted(p.name for p in self.variants.glob("*") if (p / MANIFEST).exists()) if self.variants.exists() else []

    def find_model(self, name: str) -> RunModel:
        """'student', 'teacher', the labels-only student or a variant that was made; anything else is refused
        with the names there are."""
        if name == "student":
            if not is_saved(self.student):
                raise ConfigError(
                    [f"the run in {self.root} has no finished student yet; let the distillation finish (or resume it) first"]
                )
            return RunModel(name, "torch", self.student)
        if name == "teacher":
            return RunModel(name, "torch", Path(self.teacher_info()["path"]))
        if name == LABELS_ONLY and is_saved(self.labels_only):
            return RunModel(name, "torch", self.labels_only)
        if not VARIANT_NAME.fullmatch(name) or name not in self.variant_names():
            there = ", ".join(self.variant_names()) or "none yet"
            raise ConfigError(
                [f"'{name}' is not a model of this run; choose 'student', 'teacher' or one of its variants ({there})"]
            )
        manifest = read_manifest(self.variants / name)
        if manifest["status"] != "ok":
            raise ConfigError(
                [f"variant '{name}' is {manifest['status']} ({manifest.get('reason', '')}); pick a variant that was made"]
            )
        return RunModel(name, manifest["form"], self.variants / name, manifest)

    def read_config(self) -> dict:
        """config.json: the settings asked for, the settings as run, and the plan."""
        return json.loads(self.config.read_text())

    def record_setting(self, key: str, value) -> None:
        """A setting the run chose (asked as 0, 'choose'), written into config.json's settings as run."""
        resolved = self.read_config()
        resolved["distill"][key] = value
        write_json(self.config, resolved)


def write_run_config(run: RunPaths, config: Settings, dataset: PreparedDataset, resume: bool) -> None:
    """The settings asked for, next to the outputs, before anything runs; a resumed run must match them.
    ``distill`` holds the settings as run (an automatic max_length or learning rate resolved, see record_plan)."""
    resolved = {
        "requested": config.to_dict(),
        "distill": config.to_dict(),
        "dataset": str(dataset.path),
        "task": dataset.report.task,
        "labels": dataset.report.labels,
    }
    if run.config.exists():
        previous = json.loads(run.config.read_text())
        asked = previous.get("requested", previous["distill"])
        if resume and asked != resolved["requested"]:
            changed = sorted(k for k in resolved["requested"] if asked.get(k) != resolved["requested"][k])
            raise CheckpointError(
                f"This run was started with other settings ({', '.join(changed)}); "
                "resume it with the same settings, or start a new run folder."
            )
        if not resume:
            raise CheckpointError(f"{run.root} already holds a run. Resume it (--resume) or choose a new folder.")
        return  # it already says what this run resolved and did so far
    run.root.mkdir(parents=True, exist_ok=True)
    write_json(run.config, resolved)


def write_json(path: Path, value: dict) -> None:
    """Whole or not at all: a temp file renamed over the old one."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=2))
    os.replace(tmp, path)


def read_manifest(folder: Path) -> dict:
    """A variant's variant.json, checked to hold at least its name and status."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise ModelLoadError(f"{folder} is not a saved variant (no {MANIFEST}). Pick a folder under the run's variants/.")
    try:
        manifest = json.loads(path.read_text())
        manifest["name"], manifest["status"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ModelLoadError(f"{path} is damaged ({err}); delete the variant and make it again.") from err
    return manifest
