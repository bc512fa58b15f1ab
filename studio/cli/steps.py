"""The commands of the studio's steps: catalog, check-data, distill, evaluate, methods, compress, export, show."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from storage.tables import JobStatus
from studio.cli.shell import (
    app,
    friendly,
    job_of,
    open_history,
    run_job,
    settings_options,
)
from studio.cli.tables import format_table, per_class_table
from studio.dataset import DatasetOptions, prepare_dataset
from studio.distill_config import DistillConfig
from studio.errors import ConfigError
from studio.export.settings import ExportSettings
from studio.jobs.kinds import CompressJob, EvaluateJob
from studio.paths import runs_dir


@app.command()
@friendly
def catalog(
    measure: Annotated[
        bool,
        typer.Option(help="Time a few real fine-tune steps of each installed teacher on this machine (about a minute each)."),
    ] = False,
) -> None:
    """List the teachers that work offline, with what each costs to fine-tune here when measured."""
    from studio.teacher import CATALOG, catalog_status
    from studio.teacher_cost import known_cost, measure_cost

    for entry in CATALOG.values():
        typer.echo(f"{entry.key:14} {entry.task:14} {entry.params_millions:6.1f}M  {entry.title}")
        typer.echo(f"{'':14} licence: {entry.licence}; {catalog_status(entry)}")
        installed = catalog_status(entry) == "installed"
        cost = measure_cost(entry.key) if measure and installed else known_cost(entry.key)
        typer.echo(f"{'':14} fine-tune: {cost.words() if cost else 'not measured here (--measure)'}")


UNLABELLED_HELP = (
    "A file of texts without a label (a text column, or .txt with one text per line): the teacher labels them "
    "and the student learns from its answers (classification)."
)


@app.command("check-data")
@friendly
@settings_options(DatasetOptions, into="data_settings")
def check_data(
    file: Path,
    out: Annotated[Optional[Path], typer.Option(help="Where to write the splits.")] = None,
    unlabelled: Annotated[Optional[Path], typer.Option("--unlabelled", "--unlabelled-file", help=UNLABELLED_HELP)] = None,
    data_settings: dict | None = None,
) -> None:
    """Check a dataset file (CSV, TSV, JSONL, TXT, Parquet) and split it into train/validation/test."""
    out = out or runs_dir() / "datasets" / file.stem
    opts = DatasetOptions(**(data_settings or {}))
    prepared = prepare_dataset(file, out, opts, unlabelled_file=unlabelled)
    _print_report(prepared.report)
    typer.echo(f"Splits written to {prepared.path}")


def _print_report(report) -> None:
    cols = ", ".join(f"{role}={column}" for role, column in report.roles())
    typer.echo(f"{report.source}: {report.format}, {report.encoding}, task {report.task}, columns {cols}")
    typer.echo(f"rows read {report.rows_read}, used {report.rows_used}; splits {report.split_sizes}")
    if report.unlabelled or report.unlabelled_file:
        source = f", with those of {report.unlabelled_file}" if report.unlabelled_file else ""
        typer.echo(f"texts without a label: {report.unlabelled}{source} (the teacher labels them for the student)")
    if report.split_note:
        typer.echo(report.split_note)
    if report.label_counts:
        typer.echo("labels: " + ", ".join(f"{k} ({v})" for k, v in report.label_counts.items()))
    for warning in report.warnings:
        typer.secho(f"note: {warning}", fg=typer.colors.YELLOW)


@app.command()
@friendly
@settings_options(DatasetOptions, skip=("seed",), into="data_settings")
@settings_options(DistillConfig, skip=("seed",))
def distill(
    data: Annotated[Path, typer.Option(help="Dataset file (CSV, TSV, JSONL, TXT, Parquet).")],
    test_file: Annotated[
        Optional[Path], typer.Option(help="Your own test file (same columns), instead of holding out part of --data.")
    ] = None,
    validation_file: Annotated[Optional[Path], typer.Option(help="Your own validation file (same columns).")] = None,
    unlabelled_file: Annotated[  # not --unlabelled: that one turns the teacher's answers to them on and off
        Optional[Path], typer.Option(help=UNLABELLED_HELP)
    ] = None,
    queue: Annotated[bool, typer.Option(help="Hand the job to the worker instead of running it here.")] = False,
    needs: Annotated[
        str, typer.Option(help="With --queue: tags the worker must have, comma-separated (e.g. gpu); see 'workers'.")
    ] = "",
    seed: Annotated[int, typer.Option(help="Random seed of the split and the training.")] = 13,
    settings: dict | None = None,
    data_settings: dict | None = None,
) -> None:
    """Distill a teacher into a smaller student on your data, then evaluate both on the test split, beside a
    majority-class and a TF-IDF baseline. Settings left out keep their defaults.

    The run is recorded in the job history (the same one the browser shows)."""
    from studio.distill_plan import student_words
    from studio.jobs import service

    config = DistillConfig(seed=seed, **(settings or {}))
    storage, me = open_history()
    opts = DatasetOptions(seed=seed, **(data_settings or {}))
    dataset_id = service.add_dataset(
        storage, me, data, opts, test_file=test_file, validation_file=validation_file, unlabelled_file=unlabelled_file
    )
    with storage.db.session() as s:
        from storage.records import get_dataset

        _print_report(_report_of(get_dataset(s, me, dataset_id)))
    title = f"{config.teacher} -> {config.student or student_words(config.student_layers)} on {data.name}"
    wanted = [t.strip().lower() for t in needs.split(",") if t.strip()]
    if wanted and not queue:
        raise ConfigError(["--needs picks the worker that runs the job: add --queue (without it, the job runs here)"])
    job_id = service.submit(
        storage,
        me,
        "distill",
        {"dataset_id": dataset_id, "distill": config.to_dict()},
        title=title,
        enqueue=False,
        needs=wanted,
    )
    if run_job(storage, me, job_id, queue) == JobStatus.DONE:
        folder = storage.store.resolve(job_of(storage, me, job_id).folder)
        typer.echo(f"Student saved to {folder / 'student'}")
        _print_eval(json.loads((folder / "eval.json").read_text()))


def _report_of(dataset):
    from studio.dataset import DatasetReport

    return DatasetReport(**dataset.report)


@app.command()
@friendly
@settings_options(EvaluateJob, into="evaluate_settings")
def evaluate(
    job: Annotated[int, typer.Argument(help="The id of a finished distillation job.")],
    queue: Annotated[bool, typer.Option(help="Hand the job to the worker instead of running it here.")] = False,
    evaluate_settings: dict | None = None,
) -> None:
    """Measure teacher, student (and variants) of a finished run on its test split, as a new job."""
    from studio.jobs import service

    storage, me = open_history()
    spec = EvaluateJob(**(evaluate_settings or {}))
    job_id = service.submit(storage, me, "evaluate", spec.to_dict(), parent_id=job, title=f"evaluate job {job}", enqueue=False)
    if run_job(storage, me, job_id, queue) == JobStatus.DONE:
        folder = storage.store.resolve(job_of(storage, me, job).folder)
        report = folder / "compare.json" if spec.variants else folder / "eval.json"
        _print_eval(json.loads(report.read_text()))


def _print_eval(report: dict) -> None:
    if report.get("plan"):
        typer.echo(report["plan"])
    typer.echo(format_table(report["models"]))
    for model in report["models"]:
        for warning in model.get("warnings") or []:
            typer.secho(f"Warning: {model['name']} {warning}.", fg=typer.colors.YELLOW)
    if report.get("answers"):
        from studio.answers import answers_text

        book = report["answers"]
        typer.echo(
            f"\n'answer ppl' is how surprising the teacher finds a model's answers; the human reference "
            f"answers score {book['reference_perplexity']:.1f}."
            + (
                f" {book['skipped_repeats']} test prompt(s) that nearly repeat a training one were left out."
                if book.get("skipped_repeats")
                else ""
            )
        )
        typer.echo(answers_text(book))
    student = next((m for m in report["models"] if m["name"] == "student" and m.get("per_class")), None)
    if student:
        typer.echo("\nThe student, label by label (test split):")
        typer.echo(per_class_table(student["per_class"]))


@app.command()
@friendly
def methods() -> None:
    """List the compression methods and their settings (defaults in brackets)."""

    from studio.compress import METHODS
    from studio.settings import help_of

    for method in METHODS.values():
        typer.echo(f"{method.name:14} {method.kind:9} {method.summary}")
        for f in dataclasses.fields(method.settings):
            typer.echo(f"{'':16}{f.name}={str(f.default).lower() if isinstance(f.default, bool) else f.default}: {help_of(f)}")
    typer.echo("\nCombine steps with '+', settings after ':', e.g.  prune-heads:fraction=0.3+heal:epochs=2+int8")


def split_variant(text: str) -> tuple[str | None, str]:
    """'name=recipe' or just 'recipe' (a recipe's own '=' comes after a ':')."""
    head, eq, rest = text.partition("=")
    if eq and ":" not in head and "+" not in head:
        return head.strip(), rest
    return None, text


@app.command()
@friendly
@settings_options(CompressJob, skip=("recipes",), into="compress_settings")
def compress(
    job: Annotated[int, typer.Argument(help="The id of a finished distillation job ('jobs list' shows them).")],
    variant: Annotated[
        list[str],
        typer.Option(
            "--variant", "-v", help="A recipe, optionally named: 'small=prune-heads:fraction=0.5+heal+int8'. Repeat for several."
        ),
    ],
    queue: Annotated[bool, typer.Option(help="Hand the job to the worker instead of running it here.")] = False,
    compress_settings: dict | None = None,
) -> None:
    """Make compressed variants (quantized, pruned, healed) of a run's student and measure them."""
    from studio.jobs import service

    spec = CompressJob(recipes=[list(split_variant(text)) for text in variant], **(compress_settings or {}))
    storage, me = open_history()
    job_id = service.submit(
        storage,
        me,
        "compress",
        spec.to_dict(),
        parent_id=job,
        title=f"compress job {job}: {', '.join(variant)}",
        enqueue=False,
    )
    if run_job(storage, me, job_id, queue) != JobStatus.DONE:
        return
    folder = storage.store.resolve(job_of(storage, me, job).folder)
    from studio.run import read_manifest

    for manifest in _made_variants(storage, me, job_id, folder, read_manifest):
        typer.echo(f"{manifest.name}: {manifest.status}" + ("" if manifest.ok else f": {manifest.reason}"))
    if spec.evaluate:
        typer.echo(format_table(json.loads((folder / "compare.json").read_text())["models"]))


def _made_variants(storage, me, job_id, folder, read_manifest):
    from storage.records import variants_of
    from studio.run import RunPaths

    with storage.db.session() as s:
        names = [v.name for v in variants_of(s, me, job_id)]
    return [read_manifest(RunPaths(folder).variants / name) for name in names]


@app.command()
@friendly
@settings_options(ExportSettings, into="export_settings")
def export(
    job: Annotated[int, typer.Argument(help="The id of a finished distillation job ('jobs list' shows them).")],
    out: Annotated[Optional[Path], typer.Option(help="Where to copy the zip; default: this folder.")] = None,
    queue: Annotated[bool, typer.Option(help="Hand the job to the worker instead of running it here.")] = False,
    export_settings: dict | None = None,
) -> None:
    """Write one zip for a model of a finished run: Hugging Face folder, model card, ONNX, GGUF, predict.py."""
    import shutil

    from studio.jobs import service
    from studio.jobs.kinds import export_file_name

    storage, me = open_history()
    spec = ExportSettings(**(export_settings or {}))
    job_id = service.submit(
        storage, me, "export", spec.to_dict(), parent_id=job, title=f"export {spec.variant} of job {job}", enqueue=False
    )
    if run_job(storage, me, job_id, queue) != JobStatus.DONE:
        return
    folder = storage.store.resolve(job_of(storage, me, job_id).folder)
    made = folder / export_file_name(job, spec.variant)
    target = out or Path.cwd() / made.name
    if target.is_dir():
        target = target / made.name
    shutil.copyfile(made, target)
    summary = json.loads((folder / "export.json").read_text())
    typer.echo(f"Wrote {target} ({summary['bytes'] / 1e6:.1f} MB):")
    for path, about in summary["files"].items():
        typer.echo(f"  {path:<28} {about}")
    if summary["hybrid"]:
        h = summary["hybrid"]
        typer.echo(
            f"Hybrid: the student answers {h['student_share']:.1%} alone at confidence {h['threshold']:.3g} ({h['measured_on']})."
        )
    for note in summary["notes"]:
        typer.echo(f"Note: {note}")


@app.command()
@friendly
def show(job: Annotated[int, typer.Argument(help="A job id.")]) -> None:
    """Print a job's settings, state, variants with their scores, and files."""
    from storage import jobs as job_rows
    from storage.records import artifacts_of, run_models

    storage, me = open_history()
    with storage.db.session() as s:
        row = job_rows.get(s, me, job)
        typer.echo(
            f"job {row.id}: {row.kind} {row.title}\nstatus {row.status} ({row.progress:.0%}, {row.step})"
            f"{', attempt ' + str(row.attempt) if row.attempt > 1 else ''}"
        )
        if row.error:
            typer.secho(f"error: {row.error}", fg=typer.colors.RED)
        typer.echo("config: " + json.dumps(row.config, indent=2))
        curve = job_rows.last_values(s, [row.id], "loss")
        if curve:
            typer.echo(f"last training loss: {curve[row.id]:.4f}")
        models = [m.with_scores() for m in run_models(s, me, job, made_from=False)]
        if models:
            typer.echo(format_table(models))
        files = artifacts_of(s, me, job)
        if files:
            typer.echo(f"{len(files)} files, {sum(a.bytes for a in files) / 1e6:.1f} MB, in {storage.store.resolve(row.folder)}")
