"""Command line: a thin shell over the pipeline modules. Errors become one plain message."""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import sys
import typing
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Optional

import typer
from tqdm import tqdm

from storage.config import studio_home
from storage.errors import StorageError
from storage.tables import JobStatus
from studio import metrics
from studio.dataset import DatasetOptions, prepare_dataset
from studio.distill_config import DistillConfig
from studio.errors import StudioError
from studio.logs import quiet_libraries
from studio.paths import runs_dir
from studio.settings import choices_of, help_of

app = typer.Typer(add_completion=False,
                  help="SLM Studio: distill a big teacher model into a small, fast student on your own data.")
SAMPLES = Path(__file__).resolve().parent / "samples"


@app.callback(invoke_without_command=True)
def welcome(ctx: typer.Context) -> None:
    """With no command: show what is installed and how to start."""
    if ctx.invoked_subcommand is not None:
        return
    from studio.teacher import CATALOG, catalog_status

    typer.echo("SLM Studio. Open it in the browser with:  python -m studio ui\n\nOffline teachers:")
    for entry in CATALOG.values():
        typer.echo(f"  {entry.key:14} {entry.task:14} {catalog_status(entry)}")
    typer.echo(f"\nSample data: {SAMPLES / 'support_tickets.csv'}\n             {SAMPLES / 'shop_faq.jsonl'}")
    _history_line()
    typer.echo(f"\nTry:\n  python -m studio distill --data {SAMPLES / 'support_tickets.csv'}\n"
               "  python -m studio --help")


def _history_line() -> None:
    """Opening the history upgrades its schema: the studio's start is where that happens."""
    from storage import jobs as job_rows

    try:
        storage, me = _storage()
    except StorageError as err:
        typer.secho(f"\nJob history unavailable: {err}", fg=typer.colors.YELLOW)
        return
    with storage.db.session() as s:
        count = job_rows.count_jobs(s, me)
    where = storage.db.engine.url.render_as_string(hide_password=True)
    typer.echo(f"\nJob history: {count} job(s) in {where} ('python -m studio jobs list')")


def settings_options(cls: type, skip: tuple[str, ...] = ()) -> Callable:
    """One --option per field of the settings class ``cls`` (its help text, its choices, its default),
    added to a command, which receives the ones given as the dict ``settings``. A new field is a new option."""

    def shown(value: object) -> str:
        return "empty" if value is None else str(value).lower() if isinstance(value, bool) else str(value)

    def wrap(fn: Callable) -> Callable:
        own = inspect.signature(fn, eval_str=True)
        params = [p for p in own.parameters.values() if p.name != "settings"]
        hints = typing.get_type_hints(cls)
        extra = []
        for field in dataclasses.fields(cls):
            if field.name in skip:
                continue
            kind = next(t for t in (typing.get_args(hints[field.name]) or (hints[field.name],)) if t is not type(None))
            words = help_of(field) + (f" One of: {', '.join(choices_of(field))}." if choices_of(field) else "")
            flag = (f"--{field.metadata['flag']}",) if field.metadata.get("flag") else ()
            option = typer.Option(*flag, help=f"{words} Default: {shown(field.default)}.", show_default=False)
            extra.append(inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                           annotation=Annotated[Optional[kind], option]))
        names = [p.name for p in extra]

        @wraps(fn)
        def command(*args, **kwargs):
            given = {name: kwargs.pop(name, None) for name in names}
            return fn(*args, settings={k: v for k, v in given.items() if v is not None}, **kwargs)

        command.__signature__ = own.replace(parameters=params + extra)
        command.__annotations__ = {p.name: p.annotation for p in params + extra}
        return command

    return wrap


def friendly(fn: Callable) -> Callable:
    """Show a StudioError as its message and exit 2, never as a traceback."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (StudioError, StorageError) as err:
            typer.secho(f"Error: {err}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2) from None

    return wrapper


@app.command()
@friendly
def catalog(measure: Annotated[bool, typer.Option(
        help="Time a few real fine-tune steps of each installed teacher on this machine (about a minute each).")]
            = False) -> None:
    """List the teachers that work offline, with what each costs to fine-tune here when measured."""
    from studio.teacher import CATALOG, catalog_status
    from studio.teacher_cost import known_cost, measure_cost

    for entry in CATALOG.values():
        typer.echo(f"{entry.key:14} {entry.task:14} {entry.params_millions:6.1f}M  {entry.title}")
        typer.echo(f"{'':14} licence: {entry.licence}; {catalog_status(entry)}")
        installed = catalog_status(entry) == "installed"
        cost = measure_cost(entry.key) if measure and installed else known_cost(entry.key)
        typer.echo(f"{'':14} fine-tune: {cost.words() if cost else 'not measured here (--measure)'}")


def _options(task, text_column, label_column, prompt_column, response_column, max_chars, seed) -> DatasetOptions:
    return DatasetOptions(task=task, text_column=text_column, label_column=label_column,
                          prompt_column=prompt_column, response_column=response_column,
                          max_chars=max_chars, seed=seed)


Task = Annotated[Optional[str], typer.Option(help="classification or causal_lm; detected when left out.")]
TextCol = Annotated[Optional[str], typer.Option(help="Column with the text (detected when left out).")]
LabelCol = Annotated[Optional[str], typer.Option(help="Column with the label, for classification.")]
PromptCol = Annotated[Optional[str], typer.Option(help="Prompt column of prompt/response pairs.")]
ResponseCol = Annotated[Optional[str], typer.Option(help="Response column of prompt/response pairs.")]
MaxChars = Annotated[int, typer.Option(help="Longest classification text accepted, in characters.")]


@app.command("check-data")
@friendly
def check_data(file: Path, out: Annotated[Optional[Path], typer.Option(help="Where to write the splits.")] = None,
               task: Task = None, text_column: TextCol = None, label_column: LabelCol = None,
               prompt_column: PromptCol = None, response_column: ResponseCol = None,
               max_chars: MaxChars = 100_000, seed: int = 13) -> None:
    """Check a dataset file (CSV, TSV, JSONL, TXT, Parquet) and split it into train/validation/test."""
    out = out or runs_dir() / "datasets" / file.stem
    opts = _options(task, text_column, label_column, prompt_column, response_column, max_chars, seed)
    prepared = prepare_dataset(file, out, opts)
    _print_report(prepared.report)
    typer.echo(f"Splits written to {prepared.path}")


def _print_report(report) -> None:
    cols = ", ".join(f"{k}={v}" for k, v in [("text", report.text_column), ("label", report.label_column),
                                             ("prompt", report.prompt_column), ("response", report.response_column)] if v)
    typer.echo(f"{report.source}: {report.format}, {report.encoding}, task {report.task}, columns {cols}")
    typer.echo(f"rows read {report.rows_read}, used {report.rows_used}; splits {report.split_sizes}")
    if report.split_note:
        typer.echo(report.split_note)
    if report.label_counts:
        typer.echo("labels: " + ", ".join(f"{k} ({v})" for k, v in report.label_counts.items()))
    for warning in report.warnings:
        typer.secho(f"note: {warning}", fg=typer.colors.YELLOW)


class ProgressBars:
    """One tqdm bar per stage and epoch, fed by the pipeline's progress callback."""

    NAMES = {"teacher": "fine-tune teacher", "cache": "cache teacher logits", "student": "distill student",
             "heal": "heal (KD)"}

    def __init__(self) -> None:
        self.bar: tqdm | None = None
        self.key: tuple | None = None

    def __call__(self, p) -> None:
        if p.message:
            tqdm.write(p.message)
        if p.items:  # an item of several (a variant, an export step): its message is the heading, not a bar
            self.close()
            return
        key = (p.stage, p.label, p.epoch)
        if key != self.key:
            self.close()
            label = " ".join(filter(None, [self.NAMES.get(p.stage, p.stage), p.label]))
            label += f" {p.epoch}/{p.epochs}" if p.epochs > 1 else ""
            self.bar, self.key = tqdm(total=p.steps, desc=label, unit="step", file=sys.stderr), key
        self.bar.n = p.step
        if p.loss is not None:
            self.bar.set_postfix(loss=f"{p.loss:.4f}", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _storage():
    from storage.config import open_storage
    from storage.records import local_user
    from studio.jobs.worker import recover

    storage = open_storage()
    recover(storage)  # a job whose process died shows as interrupted (and resumable), never running forever
    return storage, local_user(storage.db)


def _run_job(storage, viewer, job_id: int, queue: bool) -> str:
    """Run a recorded job here with progress bars, or leave it to the worker; returns its status."""
    from studio.jobs.queue import JobQueue
    from studio.jobs.runner import run_here

    if queue:
        JobQueue(storage).enqueue(job_id)
        typer.echo(f"Job {job_id} queued. A worker runs it ('python -m studio worker'); "
                   f"follow it with 'python -m studio jobs show {job_id}'.")
        return JobStatus.QUEUED
    typer.echo(f"Job {job_id} (in the job history; Ctrl-C stops it after the current step, resumable)")
    bars = ProgressBars()
    try:
        status = run_here(storage, job_id, echo=bars)
    finally:
        bars.close()
    job = _job(storage, viewer, job_id)
    if status != JobStatus.DONE:
        typer.secho(f"Job {job_id} {status}" + (f": {job.error}" if job.error else "") +
                    (f"\nResume it with 'python -m studio jobs resume {job_id}'." if status != JobStatus.FAILED else ""),
                    fg=typer.colors.RED if status == JobStatus.FAILED else typer.colors.YELLOW, err=True)
        raise typer.Exit(1 if status == JobStatus.FAILED else 3)
    return status


def _job(storage, viewer, job_id: int):
    from storage import jobs as job_rows

    with storage.db.session() as s:
        return job_rows.get(s, viewer, job_id)


@app.command()
@friendly
@settings_options(DistillConfig, skip=("seed",))
def distill(
    data: Annotated[Path, typer.Option(help="Dataset file (CSV, TSV, JSONL, TXT, Parquet).")],
    test_file: Annotated[Optional[Path], typer.Option(help="Your own test file (same columns), instead of holding "
                                                      "out part of --data.")] = None,
    validation_file: Annotated[Optional[Path], typer.Option(help="Your own validation file (same columns).")] = None,
    queue: Annotated[bool, typer.Option(help="Hand the job to the worker instead of running it here.")] = False,
    task: Task = None, text_column: TextCol = None, label_column: LabelCol = None,
    prompt_column: PromptCol = None, response_column: ResponseCol = None,
    max_chars: MaxChars = 100_000,
    seed: Annotated[int, typer.Option(help="Random seed of the split and the training.")] = 13,
    settings: dict | None = None,
) -> None:
    """Distill a teacher into a smaller student on your data, then evaluate both on the test split, beside a
    majority-class and a TF-IDF baseline. Settings left out keep their defaults.

    The run is recorded in the job history (the same one the browser shows)."""
    from studio.distill_plan import student_words
    from studio.jobs import service

    config = DistillConfig(seed=seed, **(settings or {}))
    storage, me = _storage()
    opts = _options(task, text_column, label_column, prompt_column, response_column, max_chars, seed)
    dataset_id = service.add_dataset(storage, me, data, opts, test_file=test_file, validation_file=validation_file)
    with storage.db.session() as s:
        from storage.records import get_dataset

        _print_report(_report_of(get_dataset(s, me, dataset_id)))
    title = f"{config.teacher} -> {config.student or student_words(config.student_layers)} on {data.name}"
    job_id = service.submit(storage, me, "distill", {"dataset_id": dataset_id, "distill": config.to_dict()},
                            title=title, enqueue=False)
    if _run_job(storage, me, job_id, queue) == JobStatus.DONE:
        folder = storage.store.resolve(_job(storage, me, job_id).folder)
        typer.echo(f"Student saved to {folder / 'student'}")
        _print_eval(json.loads((folder / "eval.json").read_text()))


def _report_of(dataset):
    from studio.dataset import DatasetReport

    return DatasetReport(**dataset.report)


@app.command()
@friendly
def evaluate(job: Annotated[int, typer.Argument(help="The id of a finished distillation job.")],
             before_kd: Annotated[bool, typer.Option(help="Also measure the student before KD.")] = False,
             queue: Annotated[bool, typer.Option(help="Hand the job to the worker instead of running it here.")] = False
             ) -> None:
    """Measure teacher, student (and variants) of a finished run on its test split, as a new job."""
    from studio.jobs import service

    storage, me = _storage()
    job_id = service.submit(storage, me, "evaluate", {"before_kd": before_kd}, parent_id=job,
                            title=f"evaluate job {job}", enqueue=False)
    if _run_job(storage, me, job_id, queue) == JobStatus.DONE:
        folder = storage.store.resolve(_job(storage, me, job).folder)
        report = folder / "compare.json" if (folder / "compare.json").exists() else folder / "eval.json"
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
        typer.echo(f"\n'answer ppl' is how surprising the teacher finds a model's answers; the human reference "
                   f"answers score {book['reference_perplexity']:.1f}."
                   + (f" {book['skipped_repeats']} test prompt(s) that nearly repeat a training one were left out."
                      if book.get("skipped_repeats") else ""))
        typer.echo(answers_text(book))
    student = next((m for m in report["models"] if m["name"] == "student" and m.get("per_class")), None)
    if student:
        typer.echo("\nThe student, label by label (test split):")
        typer.echo(per_class_table(student["per_class"]))


def per_class_table(per_class: dict[str, dict]) -> str:
    width = max(len("label"), *(len(label) for label in per_class))
    lines = [f"{'label':<{width}}  precision  recall     F1  examples"]
    lines += [f"{label:<{width}}  {m['precision']:>9.3f}  {m['recall']:>6.3f}  {m['f1']:>5.3f}  {m['support']:>8}"
              for label, m in per_class.items()]
    return "\n".join(lines)


def format_table(models: list[dict]) -> str:
    """A plain-text table of model metrics (quality, size, speed): the columns any model has a value for."""
    columns = metrics.shown(models)
    extra = [key for key in ("form", "status") if any(m.get(key) is not None for m in models)]
    rows = [["model", *(c.short for c in columns), *({"form": "runs on"}.get(k, k) for k in extra)]]
    rows += [[str(m.get("name", "")), *(c.text(m.get(c.key)) for c in columns), *(str(m.get(k) or "–") for k in extra)]
             for m in models]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


@app.command()
@friendly
def methods() -> None:
    """List the compression methods and their settings (defaults in brackets)."""
    import dataclasses

    from studio.compress import METHODS

    for method in METHODS.values():
        typer.echo(f"{method.name:14} {method.kind:9} {method.summary}")
        fields = [f"{f.name}={f.default}" for f in dataclasses.fields(method.settings)]
        if fields:
            typer.echo(f"{'':14} {'':9} settings: {', '.join(fields)}")
    typer.echo("\nCombine steps with '+', settings after ':', e.g.  prune-heads:fraction=0.3+heal:epochs=2+int8")


def split_variant(text: str) -> tuple[str | None, str]:
    """'name=recipe' or just 'recipe' (a recipe's own '=' comes after a ':')."""
    head, eq, rest = text.partition("=")
    if eq and ":" not in head and "+" not in head:
        return head.strip(), rest
    return None, text


@app.command()
@friendly
def compress(
    job: Annotated[int, typer.Argument(help="The id of a finished distillation job ('jobs list' shows them).")],
    variant: Annotated[list[str], typer.Option("--variant", "-v", help="A recipe, optionally named: "
                                               "'small=prune-heads:fraction=0.5+heal+int8'. Repeat for several.")],
    source: Annotated[str, typer.Option(help="'student', 'teacher', or a variant made earlier.")] = "student",
    evaluate: Annotated[bool, typer.Option(help="Measure teacher, student and all variants afterwards.")] = True,
    queue: Annotated[bool, typer.Option(help="Hand the job to the worker instead of running it here.")] = False,
) -> None:
    """Make compressed variants (quantized, pruned, healed) of a run's student and measure them."""
    from studio.jobs import service

    recipes = [list(split_variant(text)) for text in variant]
    storage, me = _storage()
    job_id = service.submit(storage, me, "compress", {"recipes": recipes, "source": source, "evaluate": evaluate},
                            parent_id=job, title=f"compress job {job}: {', '.join(variant)}", enqueue=False)
    if _run_job(storage, me, job_id, queue) != JobStatus.DONE:
        return
    folder = storage.store.resolve(_job(storage, me, job).folder)
    from studio.run import read_manifest

    for manifest in _made_variants(storage, me, job_id, folder, read_manifest):
        status = manifest["status"] if manifest["status"] == "ok" else f"{manifest['status']}: {manifest.get('reason')}"
        typer.echo(f"{manifest['name']}: {status}")
    if evaluate:
        typer.echo(format_table(json.loads((folder / "compare.json").read_text())["models"]))


def _made_variants(storage, me, job_id, folder, read_manifest):
    from storage.records import variants_of
    from studio.run import RunPaths

    with storage.db.session() as s:
        names = [v.name for v in variants_of(s, me, job_id)]
    return [read_manifest(RunPaths(folder).variants / name) for name in names]


@app.command()
@friendly
def export(
    job: Annotated[int, typer.Argument(help="The id of a finished distillation job ('jobs list' shows them).")],
    variant: Annotated[str, typer.Option(help="'student', 'teacher', or a variant's name.")] = "student",
    onnx: Annotated[bool, typer.Option(help="Add an ONNX file (onnxruntime, no PyTorch needed).")] = True,
    gguf: Annotated[bool, typer.Option(help="Add a GGUF file (Llama-style text generators).")] = True,
    hybrid: Annotated[bool, typer.Option(help="Add the teacher for inputs the student is unsure of.")] = False,
    threshold: Annotated[Optional[float], typer.Option(help="Hybrid confidence threshold 0-1; default: "
                                                            "chosen from the validation split.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Where to copy the zip; default: this folder.")] = None,
    queue: Annotated[bool, typer.Option(help="Hand the job to the worker instead of running it here.")] = False,
) -> None:
    """Write one zip for a model of a finished run: Hugging Face folder, model card, ONNX, GGUF, predict.py."""
    import shutil

    from studio.jobs import service
    from studio.jobs.kinds import export_file_name

    storage, me = _storage()
    settings = {"variant": variant, "onnx": onnx, "gguf": gguf, "hybrid": hybrid, "threshold": threshold}
    job_id = service.submit(storage, me, "export", settings, parent_id=job, title=f"export {variant} of job {job}",
                            enqueue=False)
    if _run_job(storage, me, job_id, queue) != JobStatus.DONE:
        return
    folder = storage.store.resolve(_job(storage, me, job_id).folder)
    made = folder / export_file_name(job, variant)
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
        typer.echo(f"Hybrid: the student answers {h['student_share']:.1%} alone at confidence {h['threshold']:.3g} "
                   f"({h['measured_on']}).")
    for note in summary["notes"]:
        typer.echo(f"Note: {note}")


@app.command()
@friendly
def show(job: Annotated[int, typer.Argument(help="A job id.")]) -> None:
    """Print a job's settings, state, variants with their scores, and files."""
    from storage import jobs as job_rows
    from storage.records import artifacts_of, run_models

    storage, me = _storage()
    with storage.db.session() as s:
        row = job_rows.get(s, me, job)
        typer.echo(f"job {row.id}: {row.kind} {row.title}\nstatus {row.status} ({row.progress:.0%}, {row.step})"
                   f"{', attempt ' + str(row.attempt) if row.attempt > 1 else ''}")
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
            typer.echo(f"{len(files)} files, {sum(a.bytes for a in files) / 1e6:.1f} MB, in "
                       f"{storage.store.resolve(row.folder)}")


jobs_app = typer.Typer(help="The job history: list, follow, cancel, resume, delete.")
app.add_typer(jobs_app, name="jobs")


@jobs_app.command("list")
@friendly
def jobs_list(status: Annotated[Optional[str], typer.Option(help="Only jobs with this status.")] = None,
              limit: int = 30) -> None:
    """Newest jobs first."""
    from storage import jobs as job_rows

    storage, me = _storage()
    with storage.db.session() as s:
        rows = job_rows.list_jobs(s, me, limit=limit, status=status)
    if not rows:
        typer.echo("No jobs yet. Start one with 'python -m studio distill --data FILE'.")
    for j in rows:
        loss = f"  loss {j.last_loss:.4f}" if j.last_loss is not None else ""
        typer.echo(f"{j.id:5}  {j.created_at:%Y-%m-%d %H:%M}  {j.kind:9} {j.status:11} {j.progress:4.0%}  {j.title}{loss}")


@jobs_app.command("show")
@friendly
def jobs_show(job: int) -> None:
    """Same as 'show': state, settings, variants and files of one job."""
    show(job)


@jobs_app.command("cancel")
@friendly
def jobs_cancel(job: int) -> None:
    """Cancel a queued job, or stop a running one after its current step (it can be resumed)."""
    from studio.jobs import service

    storage, me = _storage()
    now = service.cancel(storage, me, job)
    typer.echo(f"Job {job} cancelled." if now == JobStatus.CANCELLED else f"Job {job} stops after its current step.")


@jobs_app.command("resume")
@friendly
def jobs_resume(job: int, queue: Annotated[bool, typer.Option(help="Hand it to the worker.")] = False) -> None:
    """Continue an interrupted, cancelled or failed job from its last checkpoint."""
    from studio.jobs import service

    storage, me = _storage()
    service.resume(storage, me, job, enqueue=False)
    if _run_job(storage, me, job, queue) == JobStatus.DONE:
        typer.echo(f"Job {job} finished.")


@jobs_app.command("delete")
@friendly
def jobs_delete(job: int, yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False) -> None:
    """Delete a job, the jobs built on it, and all their files."""
    from studio.jobs import service

    storage, me = _storage()
    if not yes:
        typer.confirm(f"Delete job {job}, every job built on it, and their files?", abort=True)
    gone = service.delete(storage, me, job)
    typer.echo(f"Deleted job(s) {', '.join(map(str, gone))} and their files.")


users_app = typer.Typer(help="Accounts of a hosted studio (SLM_STUDIO_AUTH=users): add, list, passwd, disable.")
app.add_typer(users_app, name="users")


def _password(stdin: bool) -> str:
    if stdin:
        return sys.stdin.readline().rstrip("\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@users_app.command("add")
@friendly
def users_add(name: str, admin: Annotated[bool, typer.Option(help="May see and manage every user's work.")] = False,
              password_stdin: Annotated[bool, typer.Option(help="Read the password from standard input.")] = False
              ) -> None:
    """Add a user who logs in to the hosted studio (the password is stored as an Argon2 hash)."""
    from storage.config import open_storage
    from studio.accounts import add_user

    add_user(open_storage().db, name, _password(password_stdin), admin=admin)
    typer.echo(f"User {name} added{' (admin)' if admin else ''}.")


@users_app.command("list")
@friendly
def users_list() -> None:
    """The users who can log in."""
    from storage.config import open_storage
    from storage.records import list_users

    with open_storage().db.session() as s:
        users = [(u.id, u.name, u.is_admin) for u in list_users(s)]
    for user_id, name, is_admin in users:
        typer.echo(f"{user_id:>4}  {name}{'  (admin)' if is_admin else ''}")
    if not users:
        typer.echo("No users yet: add one with 'python -m studio users add NAME --admin'.")


@users_app.command("passwd")
@friendly
def users_passwd(name: str, password_stdin: Annotated[bool, typer.Option(help="Read it from standard input.")] = False
                 ) -> None:
    """Set a new password for a user."""
    from storage.config import open_storage
    from studio.accounts import change_password

    ended = change_password(open_storage().db, name, _password(password_stdin))
    typer.echo(f"Password of {name} changed; {ended} open session(s) ended (they log in again).")


@users_app.command("disable")
@friendly
def users_disable(name: str) -> None:
    """Stop a user from logging in (their jobs and files stay; an admin still sees them)."""
    from storage.config import open_storage
    from studio.accounts import disable_user

    ended = disable_user(open_storage().db, name)
    typer.echo(f"User {name} can no longer log in; {ended} open session(s) ended at once.")


datasets_app = typer.Typer(help="Checked datasets kept for your runs: list, delete.")
app.add_typer(datasets_app, name="datasets")


@datasets_app.command("list")
@friendly
def datasets_list() -> None:
    """Your datasets, newest first (a file checked again the same way reuses its entry)."""
    from storage.records import list_datasets

    storage, me = _storage()
    with storage.db.session() as s:
        rows = list_datasets(s, me)
        for ds in rows:
            typer.echo(f"{ds.id:5}  {ds.created_at:%Y-%m-%d %H:%M}  {ds.task:14} {ds.rows:7,} rows  {ds.name}")
    if not rows:
        typer.echo("No datasets yet; 'distill --data FILE' checks and keeps one.")


@datasets_app.command("delete")
@friendly
def datasets_delete(dataset: int) -> None:
    """Delete a dataset's checked copy (refused while a job still uses it)."""
    from storage.records import delete_dataset

    storage, me = _storage()
    delete_dataset(storage.db, storage.store, me, dataset)
    typer.echo(f"Deleted dataset {dataset}.")


@app.command()
@friendly
def ui(host: Annotated[str, typer.Option(help="Address to serve on (0.0.0.0 for a team server).",
                                         envvar="SLM_STUDIO_HOST")] = "127.0.0.1",
       port: Annotated[int, typer.Option(help="Port to serve on.", envvar="SLM_STUDIO_PORT")] = 7860,
       worker: Annotated[bool, typer.Option(help="Also run a worker for the jobs (off when workers run apart).")] = True,
       ) -> None:
    """Open the studio in the browser, with a worker for the jobs it starts."""
    from storage.config import open_storage
    from studio.accounts import ready_for_logins
    from studio.hosting import HostSettings

    if HostSettings.from_env().hosted:  # settings checked before the (slow) web stack loads: a wrong one fails at once
        ready_for_logins(open_storage().db)
    # Gradio keeps uploads in its cache folder: the studio's own private one, not a shared /tmp/gradio
    os.environ.setdefault("GRADIO_TEMP_DIR", str((studio_home() / "uploads").resolve()))
    from studio.ui.server import serve

    typer.echo(f"SLM Studio at http://{host}:{port}  (Ctrl-C to stop; running jobs save their step first)")
    serve(host, port, with_worker=worker)


@app.command()
@friendly
def worker(workers: Annotated[int, typer.Option(help="Jobs run at once (CPU threads are shared among them).")] = 1
           ) -> None:
    """Run queued jobs until stopped (Ctrl-C: running jobs save their step and stay resumable)."""
    import logging

    from storage.config import open_storage
    from studio.jobs.worker import serve

    if workers < 1:
        raise typer.BadParameter("--workers must be at least 1.")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    serve(open_storage(), workers=workers)


def main() -> None:
    from transformers.utils import logging as hf_logging

    # Everything the studio writes (database, datasets, models, uploads) is its owner's alone: on a shared
    # server other accounts of the machine must not read users' data.
    os.umask(0o077)
    quiet_libraries(studio_home() / "logs" / "studio.log")  # a job's own log takes them while it runs
    hf_logging.set_verbosity_error()  # load reports and shard bars drown out our own progress
    hf_logging.disable_progress_bar()
    app()
