"""A run's folder: where each of its files is, and config.json, written before anything runs.

    run/config.json        the settings asked for and as run, the task, the labels and the plan
    run/teacher/           the teacher fine-tuned here (absent when a catalog teacher is used as it is)
    run/cache/             the teacher's logits on the training texts
    run/checkpoints/       one folder per training stage, for resume
    run/student/           the distilled student
    run/metrics.jsonl      one line per training step, append-only
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from studio.dataset import PreparedDataset
from studio.errors import CheckpointError
from studio.settings import Settings


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
    resolved = {"requested": config.to_dict(), "distill": config.to_dict(), "dataset": str(dataset.path),
                "task": dataset.report.task, "labels": dataset.report.labels}
    if run.config.exists():
        previous = json.loads(run.config.read_text())
        asked = previous.get("requested", previous["distill"])
        if resume and asked != resolved["requested"]:
            changed = sorted(k for k in resolved["requested"] if asked.get(k) != resolved["requested"][k])
            raise CheckpointError(f"This run was started with other settings ({', '.join(changed)}); "
                                  "resume it with the same settings, or start a new run folder.")
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
