"""What the CLI and the UI call: store a dataset, submit / cancel / resume / delete jobs.

Every call takes the Viewer it acts for; storage filters by owner in its queries.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from pathlib import Path

from sqlalchemy import select

from storage import jobs as job_rows
from storage import records
from storage.artifacts import sha256_of
from storage.config import Storage
from storage.errors import JobStateError
from storage.jobs import Viewer
from storage.models import Job, Variant
from studio.dataset import DatasetOptions, prepare_dataset
from studio.errors import ConfigError
from studio.jobs.kinds import KINDS


def add_dataset(storage: Storage, viewer: Viewer, file: Path, options: DatasetOptions | None = None,
                name: str | None = None) -> int:
    """Check and split a file into the store under a generated name; record it. Nothing is kept when the
    file is refused (prepare_dataset writes atomically, and the row is added only after)."""
    relative = f"datasets/{uuid.uuid4().hex}"
    prepared = prepare_dataset(file, storage.store.resolve(relative), options)
    report, digest = asdict(prepared.report), sha256_of(Path(file))
    try:
        with storage.db.session() as s:
            same = records.same_dataset(s, storage.store, viewer, digest, relative)
        if same is not None:  # the same file checked the same way: reuse it, keep no second copy
            storage.store.delete(relative)
            return same
        return records.add_dataset(storage.db, viewer.user_id, name=name or Path(file).name, sha256=digest,
                                   rows=prepared.report.rows_used, columns=prepared.report.columns,
                                   task=prepared.report.task, report=report, path=relative)
    except BaseException:
        storage.store.delete(relative)
        raise


def check_model_folder(storage: Storage, viewer: Viewer, spec: str | None) -> None:
    """A teacher or student given as a folder: never inside another user's job, and in a hosted studio
    only from the shared models folder (users must not read the server's files through the studio)."""
    from studio.accounts import auth_mode, models_dir
    from studio.teacher import CATALOG

    if not spec or spec in CATALOG:
        return
    path = Path(spec).expanduser()
    if not path.exists():
        return  # a hub id (or a missing folder: loading says so)
    path = path.resolve()
    if path.is_relative_to(storage.store.root):
        parts = path.relative_to(storage.store.root).parts
        if len(parts) >= 2 and parts[0] == "jobs" and parts[1].isdigit():
            with storage.db.session() as s:
                job_rows.get(s, viewer, int(parts[1]))  # someone else's job: "there is no job N"
            return
        raise ConfigError([f"{spec} is inside the studio's own store; pick a model folder of a run in History"])
    if auth_mode() == "users" and not path.is_relative_to(models_dir().resolve()):
        raise ConfigError([f"in the hosted studio, model folders come from the shared models folder {models_dir()} "
                           "(ask the administrator to put the model there), the catalog, or a finished run"])


def submit(storage: Storage, viewer: Viewer, kind: str, config: dict, *, parent_id: int | None = None,
           title: str = "", enqueue: bool = True) -> int:
    """Check the config whole, record the job, and (unless the caller runs it itself) queue it."""
    if kind not in KINDS:
        raise ConfigError([f"unknown job kind '{kind}'; use one of {', '.join(KINDS)}"])
    spec = KINDS[kind].spec.from_dict(config)  # every problem at once, before anything is stored
    dataset_id = getattr(spec, "dataset_id", None)
    if kind == "distill":
        for key in ("teacher", "student"):
            check_model_folder(storage, viewer, spec.distill.get(key))
    with storage.db.session() as s:
        if dataset_id:
            records.get_dataset(s, viewer, dataset_id)
        if KINDS[kind].needs_parent:
            if parent_id is None:
                raise ConfigError([f"a {kind} job works on a finished distillation: give its job id"])
            parent = job_rows.get(s, viewer, parent_id)
            if parent.kind != "distill" or parent.status != "done":
                raise JobStateError(f"Job {parent_id} is a {parent.kind} job that is {parent.status}; a {kind} job "
                                    "needs a finished distillation. Wait for it to finish, or resume it.")
        if kind == "compress":
            _check_names_free(s, parent_id, spec)
        if kind == "export":
            _check_exportable(s, parent_id, spec.variant)
    job = job_rows.submit(storage.db, viewer.user_id, kind, spec.to_dict(), title=title, dataset_id=dataset_id,
                          parent_id=parent_id)
    if enqueue:
        _queue(storage).enqueue(job.id)
    return job.id


def _check_names_free(s, parent_id: int, spec) -> None:
    """Two compress jobs on one run must not make variants of the same name (one folder each)."""
    from studio.compress.pipeline import parse_recipe, recipe_names

    wanted = recipe_names([(name, parse_recipe(text)) for name, text in spec.recipes])
    family = job_rows.descendants(s, parent_id)
    taken = {v.name: v.job_id for v in s.scalars(select(Variant).where(Variant.job_id.in_(family)))}
    for other in s.scalars(select(Job).where(Job.id.in_(family), Job.kind == "compress", Job.status != "done")):
        recipes = [(name, parse_recipe(text)) for name, text in other.config.get("recipes", [])]
        taken.update({name: other.id for name in recipe_names(recipes)})
    clashes = [f"a variant named '{n}' is made by job {taken[n]} on this run; give this one another name "
               f"('other-name=<recipe>')" for n in wanted if n in taken]
    if clashes:
        raise ConfigError(clashes)


def _check_exportable(s, parent_id: int, name: str) -> None:
    if name in ("student", "teacher"):
        return
    found = records.find_variant(s, job_rows.descendants(s, parent_id), name)
    if found is None:
        raise ConfigError([f"job {parent_id} has no variant named '{name}'; pick 'student', 'teacher' or one of "
                           "the variants its compress jobs made"])
    if found.status != "ok":
        raise ConfigError([f"variant '{name}' is {found.status}, so there is nothing to export; pick one that was made"])


def cancel(storage: Storage, viewer: Viewer, job_id: int) -> str:
    return job_rows.request_cancel(storage.db, viewer, job_id)


def resume(storage: Storage, viewer: Viewer, job_id: int, enqueue: bool = True) -> None:
    job_rows.resume(storage.db, viewer, job_id)
    if enqueue:
        _queue(storage).enqueue(job_id)


def delete(storage: Storage, viewer: Viewer, job_id: int) -> list[int]:
    return job_rows.delete_job(storage.db, storage.store, viewer, job_id)


def _queue(storage: Storage):
    from studio.jobs.queue import JobQueue

    return JobQueue(storage)
