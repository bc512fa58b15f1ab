"""A run's folder: where each of its files is, and config.json, written before anything runs.

    run/config.json        the settings asked for and as run, the task, the labels, the plan, the energy training used
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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from studio import ranks
from studio.dataset import PreparedDataset
from studio.energy import Energy
from studio.errors import CheckpointError, ConfigError, ModelLoadError
from studio.paths import is_saved
from studio.settings import Settings
from studio.words import ModelForm, Task, VariantStatus

MANIFEST = "variant.json"
LABELS_ONLY = "student-labels-only"
"""The same student trained on the labels alone (no teacher), as it appears among a run's models: what
distillation adds is the difference."""
VARIANT_NAME = re.compile(r"[a-z0-9][a-z0-9.+_-]*")


@dataclass
class VariantManifest:
    """A variant's variant.json: what it is, how it was made, and whether it was made."""

    name: str
    status: VariantStatus
    source: str = "student"
    """The model of the run it was made from ('student', 'teacher' or another variant)."""
    recipe: list[dict] = field(default_factory=list)
    """Its steps in order, each {'method': ..., and that method's settings}."""
    created: str = ""
    reason: str = ""
    """Why it is unsupported or failed."""
    seconds: float | None = None
    form: ModelForm | None = None
    """How it runs; None when it was not made."""
    task: Task | None = None
    structure: dict | None = None
    """Pruned shape (heads, neurons, layers kept) that its weights fit."""
    sparse: bool = False
    """Weights stored as bitmask + values (magnitude pruning)."""
    params: int | None = None
    notes: list[str] = field(default_factory=list)
    recreate: str = ""
    """How to load it without the studio, in words."""
    dtype: str = "float32"

    def __post_init__(self) -> None:
        self.status = VariantStatus(self.status)
        self.form = ModelForm(self.form) if self.form else None
        self.task = Task(self.task) if self.task else None

    @property
    def ok(self) -> bool:
        return self.status == VariantStatus.OK

    @property
    def methods(self) -> str:
        """The recipe's methods, as in a recipe: 'prune-heads+heal+int8'."""
        return "+".join(step["method"] for step in self.recipe)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> VariantManifest:
        """Keys this version does not know (written by a newer one) are left out, not refused."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def write(self, folder: Path) -> None:
        write_json(folder / MANIFEST, self.to_dict())


@dataclass(frozen=True)
class RunModel:
    """One model of a run, found by name: where its files are and in what form."""

    name: str
    form: ModelForm
    folder: Path
    manifest: VariantManifest | None = None
    """A variant's variant.json; None for the run's own models."""


RUN_RELATIVE = "run:"
"""How a run folder records a path beside it in the same store: 'run:../../datasets/ab12', 'run:teacher'."""


def portable(path: str | Path, root: Path) -> str:
    """A path as a run records it. A folder in the same store as the run (the run is store/jobs/N) is kept relative
    to the run, so the run reads the same on a machine whose store is in another place; anything else (a catalog
    teacher, a hub id) as given."""
    text = str(path)
    if not Path(text).is_absolute():
        return text
    store = Path(root).resolve().parent.parent
    found = Path(text).resolve()
    if found.is_relative_to(store):
        return RUN_RELATIVE + os.path.relpath(found, Path(root).resolve())
    return text


def located(value: str, root: Path) -> str:
    """The path a run recorded (portable), where it is on this machine."""
    if value.startswith(RUN_RELATIVE):
        return str((Path(root) / value[len(RUN_RELATIVE) :]).resolve())
    return value


def dataset_folder(config: dict, root: Path) -> str:
    """The prepared dataset a run trained on (config.json's "dataset"), on this machine."""
    return located(config["dataset"], root)


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
        info = json.loads(self.teacher_json.read_text())
        return {
            k: located(v, self.root) if k in ("path", "base", "answers") and isinstance(v, str) else v for k, v in info.items()
        }

    def record_teacher(self, path: str, name: str, base: str, asked: dict | None = None, answers: str = "") -> None:
        """``asked``: a teacher asked through a prompt (studio.asked_teacher), its answers kept in ``answers``."""
        extra = {"asked": asked, "answers": portable(answers, self.root)} if asked else {}
        here = {"path": portable(path, self.root), "name": name, "base": portable(base, self.root)}
        write_json(self.teacher_json, {**here, **extra})

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
            return RunModel(name, ModelForm.TORCH, self.student)
        if name == "teacher":
            teacher = self.teacher_info()
            if teacher.get("asked"):
                raise ConfigError(
                    [
                        f"the teacher of this run ({teacher['name']}) was asked through a prompt, not trained into a "
                        "classifier, so it cannot be tried, compressed or exported as one; choose the student"
                    ]
                )
            return RunModel(name, ModelForm.TORCH, Path(teacher["path"]))
        if name == LABELS_ONLY and is_saved(self.labels_only):
            return RunModel(name, ModelForm.TORCH, self.labels_only)
        if not VARIANT_NAME.fullmatch(name) or name not in self.variant_names():
            there = ", ".join(self.variant_names()) or "none yet"
            raise ConfigError(
                [f"'{name}' is not a model of this run; choose 'student', 'teacher' or one of its variants ({there})"]
            )
        manifest = read_manifest(self.variants / name)
        if not manifest.ok:
            raise ConfigError([f"variant '{name}' is {manifest.status} ({manifest.reason}); pick a variant that was made"])
        return RunModel(name, manifest.form, self.variants / name, manifest)

    def read_config(self) -> dict:
        """config.json: the settings asked for, the settings as run, and the plan."""
        return json.loads(self.config.read_text())

    def record_setting(self, key: str, value) -> None:
        """A setting the run chose (asked as 0, 'choose'), written into config.json's settings as run."""
        resolved = self.read_config()
        resolved["distill"][key] = value
        write_json(self.config, resolved)

    def record_training_energy(self, energy: Energy | None, resumed: bool) -> None:
        """What the distillation used (read on the main process, which measures its whole machine), into config.json
        as "training_energy"; the run's reports (eval.json, compare.json) copy it. Every process of a job calls it."""
        resolved = self.read_config()
        resolved["training_energy"] = None
        if energy is not None:
            machines = max(1, ranks.world() // ranks.local_world())
            basis = energy.basis + (
                f"; read on the first of {machines} machines, counted {machines} times" if machines > 1 else ""
            )
            basis += "; the run was resumed: what it did before it stopped is not counted" if resumed else ""
            resolved["training_energy"] = {**energy.to_dict(), "wh": energy.wh * machines, "basis": basis}
        write_json(self.config, resolved)


HOW_IT_RUNS = {"threads", "processes", "machines"}
"""Settings that change how fast a run goes, not what it learns: a run may resume with others."""


def write_run_config(run: RunPaths, config: Settings, dataset: PreparedDataset, resume: bool) -> None:
    """The settings asked for, next to the outputs, before anything runs; a resumed run must match them.
    ``distill`` holds the settings as run (an automatic max_length or learning rate resolved, see record_plan)."""
    resolved = {
        "requested": config.to_dict(),
        "distill": config.to_dict(),
        "dataset": portable(dataset.path, run.root),
        "task": dataset.report.task,
        "labels": dataset.report.labels,
    }
    started = run.config.exists()
    ranks.barrier()  # every process has looked before the main one writes
    if started:
        previous = json.loads(run.config.read_text())
        asked = previous.get("requested", previous["distill"])
        changed = sorted(k for k in resolved["requested"] if asked.get(k) != resolved["requested"][k] and k not in HOW_IT_RUNS)
        if resume and changed:
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
    """Whole or not at all: a temp file renamed over the old one. (In a job of several processes the main one
    writes, and the others wait until it has.)"""

    def write() -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(value, indent=2))
        os.replace(tmp, path)

    ranks.on_main(write)


def read_manifest(folder: Path) -> VariantManifest:
    """A variant's variant.json, checked."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise ModelLoadError(f"{folder} is not a saved variant (no {MANIFEST}). Pick a folder under the run's variants/.")
    try:
        return VariantManifest.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError, ValueError, AttributeError) as err:
        raise ModelLoadError(f"{path} is damaged ({err}); delete the variant and make it again.") from err
