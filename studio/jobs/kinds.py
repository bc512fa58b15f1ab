"""Job kinds: each is a config (a dataclass stored as JSON in the job row) plus a function that runs it.

    distill   dataset + DistillConfig -> run folder with teacher, student, eval.json
    compress  a distill job's run -> one variant per recipe, then every model measured (compare.json)
    evaluate  a distill job's run -> measured again (e.g. with the student before KD)
    export    one model of a distill job's run -> a zip (model folder, card, ONNX, GGUF, predict.py)

The function gets a JobContext: where to work, how to report, and the storage to record results in.

The worker's main process and the web pages import this module to read and check job configs; the pipeline
modules (torch, transformers) are imported inside the functions that run a job, so they load only in the
job's own process.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from storage import jobs as job_rows
from storage import records
from storage.config import Storage
from storage.tables import Job, JobStatus
from studio import ranks
from studio.baselines import NAMES as BASELINES
from studio.distill_config import DistillConfig
from studio.errors import ConfigError, StopRequested
from studio.export.settings import ExportSettings  # settings only: the export code itself loads when a job runs
from studio.jobs.reporter import JobReporter
from studio.run import LABELS_ONLY, RunPaths, VariantManifest
from studio.settings import Check, Settings, setting
from studio.words import VariantStatus

CHECKPOINT_EVERY_S = 300.0
"""Mid-epoch checkpoints this often: a crash costs at most five minutes of training."""


@dataclass
class JobContext:
    storage: Storage
    job: Job
    folder: Path
    reporter: JobReporter
    checkpoint_every_s: float = CHECKPOINT_EVERY_S

    @property
    def db(self):
        return self.storage.db


# --------------------------------------------------------------------------- distill


@dataclass
class DistillJob(Settings):
    """A distillation of one stored dataset."""

    dataset_id: int = 0
    distill: dict = field(default_factory=dict)
    """DistillConfig settings (checked on submit, so a bad value never reaches the queue)."""

    def checks(self) -> list[Check]:
        return [("dataset_id", self.dataset_id > 0, "the id of an uploaded dataset")]

    def other_problems(self) -> list[str]:

        try:
            DistillConfig.from_dict(self.distill)
        except ConfigError as err:
            return err.problems
        return []


def processes_check(processes: int) -> Check:
    return ("processes", 0 <= processes <= 64, "0 (one per GPU) or from 1 to 64")


def processes_of(job: Job) -> int:
    """How many processes the job runs in on this machine (studio.jobs.launch): distillations, compress jobs (their
    heals and their measuring) and evaluate jobs may run in several; an export runs in one."""
    from studio.jobs.launch import processes_for

    if job.kind == "distill":
        return processes_for(int((job.config.get("distill") or {}).get("processes") or 0))
    if job.kind in ("compress", "evaluate"):
        return processes_for(int(job.config.get("processes", 1)))
    return 1


def machines_of(job: Job) -> int:
    """How many machines the job trains on (distillations only)."""
    return int((job.config.get("distill") or {}).get("machines") or 1) if job.kind == "distill" else 1


DISTILL_SPANS = {"teacher": (0.0, 0.2), "cache": (0.2, 0.3), "student": (0.3, 0.9), "labels-only student": (0.6, 0.9)}


def run_distill(ctx: JobContext) -> None:
    import torch

    from studio.dataset import load_prepared
    from studio.distill import distill
    from studio.energy import EnergyMeter
    from studio.evaluate import evaluate_run
    from studio.training import cpu_threads

    spec = DistillJob.from_dict(ctx.job.config)
    with ctx.db.session() as s:
        dataset = records.get_dataset(s, job_rows.Viewer(ctx.job.owner_id), spec.dataset_id)
        dataset_dir = ctx.storage.store.resolve(dataset.path)
    prepared = load_prepared(dataset_dir)
    resume = (ctx.folder / "config.json").exists()
    ctx.reporter.spans = dict(DISTILL_SPANS)
    if spec.distill.get("labels_only_student"):  # two students share the training part of the bar
        ctx.reporter.spans["student"] = (0.3, 0.6)
    ctx.reporter.say("resuming from the last checkpoint" if resume else "loading the teacher")
    with EnergyMeter() as meter:  # the energy of the training run, shown beside its models (studio.energy)
        distill(
            DistillConfig.from_dict(spec.distill),
            prepared,
            ctx.folder,
            on_progress=ctx.reporter,
            resume=resume,
            checkpoint_every_s=ctx.checkpoint_every_s,
            answers_file=ctx.storage.store.resolve(f"teacher-answers/user-{ctx.job.owner_id}.sqlite"),
        )
    RunPaths(ctx.folder).record_training_energy(meter.reading, resume)
    with ctx.reporter.part(0.9, 1.0, "measuring teacher and student on the test split"):
        report = evaluate_run(ctx.folder)  # several processes: each measures its part of the test split
    if ranks.leave():  # a job of several processes: the others are done; the main one records
        return
    torch.set_num_threads(cpu_threads())
    record_run_models(ctx, report, spec.distill)


def record_run_models(ctx: JobContext, report: dict, settings: dict) -> None:
    """Teacher and student as variants with their scores; the run's files as artifacts."""
    store, job_id = ctx.storage.store, ctx.job.id
    teacher_path = RunPaths(ctx.folder).teacher_info()["path"]
    inside = Path(teacher_path).resolve().is_relative_to(ctx.folder.resolve())  # fine-tuned here, so this job's
    rows = {m["name"]: m for m in report["models"]}
    teacher_id = records.put_variant(
        ctx.db,
        job_id,
        name="teacher",
        role="teacher",
        path=store.relative(Path(teacher_path)) if inside else "",
        settings={"source": teacher_path},
    )
    student_id = records.put_variant(
        ctx.db,
        job_id,
        name="student",
        role="student",
        parent_id=teacher_id,
        path=store.relative(ctx.folder / "student"),
        method="distill",
        settings=settings,
    )
    ids = {"teacher": teacher_id, "student": student_id}
    folder = store.relative(ctx.folder)
    for name in rows:
        if name in BASELINES:
            ids[name] = records.put_variant(
                ctx.db, job_id, name=name, role="baseline", method=name, settings={"fitted_on": "the training split"}
            )
        elif name == LABELS_ONLY:
            ids[name] = records.put_variant(
                ctx.db,
                job_id,
                name=name,
                role="student",
                parent_id=teacher_id,
                path=f"{folder}/student_labels_only",
                method="labels only",
                settings={**settings, "alpha": 0.0},
            )
            records.record_artifacts(ctx.db, job_id, store.files_under(f"{folder}/student_labels_only"), "model", ids[name])
    for name, variant_id in ids.items():
        records.add_scores(ctx.db, job_id, variant_id, _numbers(rows.get(name, {})))
    records.record_artifacts(ctx.db, job_id, store.files_under(f"{folder}/student"), "model", student_id)
    if inside:
        records.record_artifacts(ctx.db, job_id, store.files_under(store.relative(Path(teacher_path))), "model", teacher_id)
    for name, kind in [("config.json", "config"), ("eval.json", "report"), ("metrics.jsonl", "metrics")]:
        if (ctx.folder / name).exists():
            records.record_artifacts(ctx.db, job_id, [store.describe(f"{folder}/{name}")], kind)


def _numbers(row: dict) -> dict[str, float]:
    return {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


# --------------------------------------------------------------------------- compress


@dataclass
class CompressJob(Settings):
    """Variants of a finished distillation run (the job's parent)."""

    recipes: list = field(default_factory=list)
    """[[name or null, recipe text], ...], e.g. [["slim", "prune-heads:fraction=0.5+heal"], [null, "int8"]]."""
    source: str = setting("student", "The model the variants are made from: 'student', 'teacher', or a variant made earlier.")
    evaluate: bool = setting(True, "Measure teacher, student and every variant on the test split afterwards.")
    processes: int = setting(
        1,
        "Processes a heal trains in, each on its part of every batch (one per GPU), and that share the measuring; "
        "0: one per GPU of the machine.",
    )

    def checks(self) -> list[Check]:
        return [("recipes", len(self.recipes) > 0, "at least one recipe"), processes_check(self.processes)]

    def other_problems(self) -> list[str]:
        from studio.compress.pipeline import check_recipe, parse_recipe

        problems = []
        for item in self.recipes:
            try:
                found = check_recipe(parse_recipe(item[1]))
            except ConfigError as err:
                found = err.problems
            except (TypeError, IndexError, AttributeError):
                found = [f"recipe {item!r} should be [name or null, recipe text]"]
            problems += [f"{item[0]}: {p}" if len(self.recipes) > 1 and item and item[0] else p for p in found]
        return problems


def role_of(recipe: list[dict]) -> str:
    from studio.compress import METHODS

    kinds = {METHODS[step["method"]].kind for step in recipe}
    return "quantized" if "quantize" in kinds else "pruned" if "prune" in kinds else "student"


def run_compress(ctx: JobContext) -> None:
    from studio.compress.pipeline import compress_many, parse_recipe
    from studio.evaluate import evaluate_all

    spec = CompressJob.from_dict(ctx.job.config)
    run_dir = parent_folder(ctx)
    recipes = [(name, parse_recipe(text)) for name, text in spec.recipes]
    with ctx.db.session() as s:
        family = job_rows.descendants(s, ctx.job.parent_id)
        source = records.find_variant(s, family, spec.source)
        source_id = source.id if source else None
        # A resumed job keeps only what it made and recorded itself, and only variants that came out
        # (ok, or not possible on this machine); one that failed, perhaps for a passing reason, is made again.
        own = records.variants_of(s, job_rows.Viewer(ctx.job.owner_id), ctx.job.id)
    keep = {v.name for v in own if v.status in (VariantStatus.OK, VariantStatus.UNSUPPORTED)}
    for failed in (v for v in own if v.name not in keep and v.path and ranks.is_main()):
        ctx.storage.store.delete(failed.path)
    ranks.barrier()
    ids = {}

    def record(manifest: VariantManifest) -> None:  # as each variant is saved, so a crash later loses none of them
        if not ranks.is_main():
            return  # the main process records for every process of the job
        folder = f"{ctx.storage.store.relative(run_dir)}/variants/{manifest.name}"
        ids[manifest.name] = records.put_variant(
            ctx.db,
            ctx.job.id,
            name=manifest.name,
            role=role_of(manifest.recipe),
            parent_id=source_id,
            method=manifest.methods,
            settings={"recipe": manifest.recipe},
            status=manifest.status,
            path=folder,
        )
        records.record_artifacts(ctx.db, ctx.job.id, ctx.storage.store.files_under(folder), "model", ids[manifest.name])

    with one_job_per_run(ctx, run_dir), ctx.reporter.part(0.0, 0.8 if spec.evaluate else 1.0, "making variants"):
        made = compress_many(run_dir, recipes, source=spec.source, on_progress=ctx.reporter, keep=keep, on_made=record)
    report = None
    if spec.evaluate:  # in a job of several processes, each measures its part of the test split
        with one_job_per_run(ctx, run_dir), ctx.reporter.part(0.8, 1.0, "measuring every model on the test split"):
            report = evaluate_all(run_dir, variants=[m.name for m in made])
    if ranks.leave():  # a job of several processes: the others are done; the main one records
        return
    if report is not None:
        for row in report["models"]:
            if row["name"] in ids:
                records.add_scores(ctx.db, ctx.job.id, ids[row["name"]], _numbers(row))


@contextmanager
def one_job_per_run(ctx: JobContext, run_dir: Path) -> Iterator[None]:
    """Compress and evaluate jobs on one run write the same variants/ and compare.json: they take turns.
    (A file lock: it goes with the process, so a killed job never leaves the run locked. In a job of several
    processes the main one holds it for all.)"""
    if not ranks.is_main():
        yield
        return
    with open(run_dir / ".jobs.lock", "w") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                ctx.reporter.say("waiting for another job on the same run to finish", 0.0)
                if ctx.reporter.cancel.wait(2.0):
                    raise StopRequested() from None
        yield


def owner(ctx: JobContext) -> job_rows.Viewer:
    """Who submitted the job, with their rights (an admin may work on another user's run)."""
    with ctx.db.session() as s:
        return job_rows.Viewer(ctx.job.owner_id, records.is_admin(s, ctx.job.owner_id))


def parent_folder(ctx: JobContext) -> Path:
    if ctx.job.parent_id is None:
        raise ConfigError([f"job {ctx.job.id} has no distillation run to work on"])
    viewer = owner(ctx)
    with ctx.db.session() as s:
        parent = job_rows.get(s, viewer, ctx.job.parent_id)
        if parent.kind != "distill" or parent.status != JobStatus.DONE:
            raise ConfigError(
                [
                    f"job {parent.id} is a {parent.kind} job that is {parent.status}; "
                    "compress and evaluate need a finished distillation"
                ]
            )
        return ctx.storage.store.resolve(parent.folder)


# --------------------------------------------------------------------------- evaluate


@dataclass
class EvaluateJob(Settings):
    """Measure a finished run again (teacher, student, and its variants)."""

    before_kd: bool = setting(False, "Causal LM: also measure the layer-dropped student before any training.")
    variants: bool = setting(True, "Also measure every variant made from the run (compare.json).")
    processes: int = setting(
        1, "Processes that share the measuring, each on its part of the test split (one per GPU); 0: one per GPU of the machine."
    )

    def checks(self) -> list[Check]:
        return [processes_check(self.processes)]


def run_evaluate(ctx: JobContext) -> None:
    spec = EvaluateJob.from_dict(ctx.job.config)
    run_dir = parent_folder(ctx)
    with one_job_per_run(ctx, run_dir):
        rows = _measure_run(ctx, spec, run_dir)  # several processes: each measures its part of the test split
    if ranks.leave():  # a job of several processes: the others are done; the main one records
        return
    with ctx.db.session() as s:
        family = job_rows.descendants(s, ctx.job.parent_id)
        targets = {row["name"]: records.find_variant(s, family, row["name"]) for row in rows}
    for row in rows:
        target = targets.get(row["name"])
        role = "baseline" if row["name"] in BASELINES else "student"
        variant_id = target.id if target else records.put_variant(ctx.db, ctx.job.id, name=row["name"], role=role)
        records.add_scores(ctx.db, ctx.job.id, variant_id, _numbers(row))


def _measure_run(ctx: JobContext, spec: EvaluateJob, run_dir: Path) -> list[dict]:
    from studio.evaluate import evaluate_all, evaluate_run

    rows = []
    if spec.before_kd or not spec.variants:
        with ctx.reporter.part(0.0, 0.5 if spec.variants else 1.0, "measuring teacher and student"):
            rows += evaluate_run(run_dir, include_before_kd=spec.before_kd)["models"]
    if spec.variants:
        with ctx.reporter.part(0.5 if rows else 0.0, 1.0, "measuring teacher, student and every variant"):
            measured = evaluate_all(run_dir)["models"]
        rows = [r for r in rows if r["name"] not in {m["name"] for m in measured}] + measured
    return rows


# --------------------------------------------------------------------------- export


def export_file_name(parent_id: int, variant: str) -> str:
    return f"slm-studio-job{parent_id}-{variant}.zip"


def run_export(ctx: JobContext) -> None:
    from studio.export.bundle import export_model

    spec = ExportSettings.from_dict(ctx.job.config)
    run_dir = parent_folder(ctx)
    with ctx.db.session() as s:
        family = job_rows.descendants(s, ctx.job.parent_id)
        found = records.find_variant(s, family, spec.variant)
        variant_id = found.id if found else None
        # the figures the studio shows for teacher, student and this model go into the card
        named = {name: records.find_variant(s, family, name) for name in dict.fromkeys(["teacher", "student", spec.variant])}
        metrics = {name: records.scores_of(s, v.id) for name, v in named.items() if v is not None}
    out = ctx.folder / export_file_name(ctx.job.parent_id, spec.variant)
    ctx.reporter.say(f"exporting {spec.variant}")
    with one_job_per_run(ctx, run_dir):  # a compress job on the run may be rewriting its variants
        result = export_model(run_dir, spec, out, metrics=metrics or None, on_progress=ctx.reporter)
    (ctx.folder / "export.json").write_text(
        json.dumps(
            {
                "file": out.name,
                "bytes": result.bytes,
                "files": result.files,
                "hybrid": result.hybrid,
                "notes": result.notes,
                "checks": result.checks,
            },
            indent=2,
        )
    )
    store = ctx.storage.store
    records.record_artifacts(ctx.db, ctx.job.id, [store.describe(store.relative(out))], "export", variant_id)
    records.record_artifacts(ctx.db, ctx.job.id, [store.describe(store.relative(ctx.folder / "export.json"))], "report")


@dataclass(frozen=True)
class Kind:
    name: str
    spec: type[Settings]
    run: Callable[[JobContext], None]
    needs_parent: bool
    summary: str


KINDS: dict[str, Kind] = {
    k.name: k
    for k in [
        Kind("distill", DistillJob, run_distill, False, "distill a teacher into a student on a dataset"),
        Kind("compress", CompressJob, run_compress, True, "make quantized / pruned variants of a finished run"),
        Kind("evaluate", EvaluateJob, run_evaluate, True, "measure a finished run (and its variants) again"),
        Kind("export", ExportSettings, run_export, True, "a zip of one model of a finished run"),
    ]
}
