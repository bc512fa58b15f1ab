"""What every command shares: the Typer app, errors as one message, options made from settings, progress
bars, and running a recorded job here."""

from __future__ import annotations

import dataclasses
import inspect
import sys
import typing
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Optional

import typer
from tqdm import tqdm

from storage.errors import StorageError
from storage.tables import JobStatus
from studio.errors import StudioError
from studio.settings import choices_of, help_of

app = typer.Typer(
    add_completion=False, help="SLM Studio: distill a big teacher model into a small, fast student on your own data."
)
SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def settings_options(cls: type, skip: tuple[str, ...] = (), into: str = "settings") -> Callable:
    """One --option per field of the settings class ``cls`` (its help text, its choices, its default),
    added to a command, which receives the ones given as the dict named ``into``. A new field is a new option.
    A command may take several classes' options (one ``into`` each; their fields must not share names)."""

    def shown(value: object) -> str:
        return "empty" if value is None else str(value).lower() if isinstance(value, bool) else str(value)

    def wrap(fn: Callable) -> Callable:
        own = inspect.signature(fn, eval_str=True)
        params = [p for p in own.parameters.values() if p.name != into]
        hints = typing.get_type_hints(cls)
        extra = []
        for field in dataclasses.fields(cls):
            if field.name in skip:
                continue
            kind = next(t for t in (typing.get_args(hints[field.name]) or (hints[field.name],)) if t is not type(None))
            words = help_of(field) + (f" One of: {', '.join(choices_of(field))}." if choices_of(field) else "")
            flag = (f"--{field.metadata['flag']}",) if field.metadata.get("flag") else ()
            option = typer.Option(*flag, help=f"{words} Default: {shown(field.default)}.", show_default=False)
            extra.append(
                inspect.Parameter(
                    field.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[Optional[kind], option]
                )
            )
        names = [p.name for p in extra]

        @wraps(fn)
        def command(*args, **kwargs):
            given = {name: kwargs.pop(name, None) for name in names}
            return fn(*args, **{into: {k: v for k, v in given.items() if v is not None}}, **kwargs)

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


class ProgressBars:
    """One tqdm bar per stage and epoch, fed by the pipeline's progress callback."""

    NAMES = {"teacher": "fine-tune teacher", "cache": "cache teacher logits", "student": "distill student", "heal": "heal (KD)"}

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


def open_history():
    from storage.config import open_storage
    from storage.records import local_user
    from studio.jobs.worker import recover

    storage = open_storage()
    recover(storage)  # a job whose process died shows as interrupted (and resumable), never running forever
    return storage, local_user(storage.db)


def run_job(storage, viewer, job_id: int, queue: bool) -> str:
    """Run a recorded job here with progress bars, or leave it to the worker; returns its status."""
    from studio.jobs.queue import JobQueue
    from studio.jobs.runner import run_here

    if queue:
        JobQueue(storage).enqueue(job_id)
        typer.echo(
            f"Job {job_id} queued. A worker runs it ('python -m studio worker'); "
            f"follow it with 'python -m studio jobs show {job_id}'."
        )
        return JobStatus.QUEUED
    typer.echo(f"Job {job_id} (in the job history; Ctrl-C stops it after the current step, resumable)")
    bars = ProgressBars()
    try:
        status = run_here(storage, job_id, echo=bars)
    finally:
        bars.close()
    job = job_of(storage, viewer, job_id)
    if status != JobStatus.DONE:
        typer.secho(
            f"Job {job_id} {status}"
            + (f": {job.error}" if job.error else "")
            + (f"\nResume it with 'python -m studio jobs resume {job_id}'." if status != JobStatus.FAILED else ""),
            fg=typer.colors.RED if status == JobStatus.FAILED else typer.colors.YELLOW,
            err=True,
        )
        raise typer.Exit(1 if status == JobStatus.FAILED else 3)
    return status


def job_of(storage, viewer, job_id: int):
    from storage import jobs as job_rows

    with storage.db.session() as s:
        return job_rows.get(s, viewer, job_id)
