"""What the CLI and the UI call: store a dataset, submit / cancel / resume / delete jobs.

Every call takes the Viewer it acts for; storage filters by owner in its queries.
"""

from __future__ import annotations

import hashlib
import re
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
from storage.tables import Job, JobStatus, Variant
from studio.data_limits import DatasetLimits
from studio.dataset import DatasetOptions, prepare_dataset
from studio.errors import ConfigError, QuotaError
from studio.hosting import HostSettings
from studio.jobs.kinds import KINDS
from studio.jobs.queue import JobQueue

TAG = re.compile(r"[a-z0-9_-]{1,32}")
"""A worker tag (python -m studio worker --tags gpu,fast) and what a job may need."""


def add_dataset(
    storage: Storage,
    viewer: Viewer,
    file: Path,
    options: DatasetOptions | None = None,
    name: str | None = None,
    test_file: Path | None = None,
    validation_file: Path | None = None,
    unlabelled_file: Path | None = None,
) -> int:
    """Check and split a file into the store under a generated name; record it. Nothing is kept when the
    file is refused (prepare_dataset writes atomically, and the row is added only after). The checked copy
    must fit the dataset limits and what is left of the user's quota. ``unlabelled_file``: texts without a
    label, for the teacher to label (classification)."""
    relative = f"datasets/{uuid.uuid4().hex}"
    limits = DatasetLimits.from_env(quota_left=quota_left(storage, viewer))
    prepared = prepare_dataset(
        file,
        storage.store.resolve(relative),
        options,
        limits,
        test_file=test_file,
        validation_file=validation_file,
        unlabelled_file=unlabelled_file,
    )
    digest = sha256_of(Path(file))
    extra = (test_file, validation_file) + ((unlabelled_file,) if unlabelled_file else ())
    if any(extra):  # the same main file with other held-out (or unlabelled) files is another dataset
        digest = hashlib.sha256(" ".join([digest] + [sha256_of(Path(f)) if f else "-" for f in extra]).encode()).hexdigest()
    report = asdict(prepared.report)
    try:
        with storage.db.session() as s:
            same = records.same_dataset(s, storage.store, viewer, digest, relative)
        if same is not None:  # the same file checked the same way: reuse it, keep no second copy
            storage.store.delete(relative)
            return same
        storage.store.push(relative)  # in the shared store (if any) before any job can ask for it
        return records.add_dataset(
            storage.db,
            viewer.user_id,
            name=name or Path(file).name,
            sha256=digest,
            rows=prepared.report.rows_used,
            columns=prepared.report.columns,
            task=prepared.report.task,
            report=report,
            path=relative,
        )
    except BaseException:
        storage.store.delete(relative)
        raise


def quota_left(storage: Storage, viewer: Viewer) -> int | None:
    """Bytes this user may still store in a hosted studio (None: no quota); refuses when none are left."""
    settings = HostSettings.from_env()
    if not settings.hosted or settings.user_quota_mb == 0:
        return None
    quota = settings.user_quota_mb * 1024 * 1024
    with storage.db.session() as s:
        used = records.stored_bytes(s, storage.store, viewer.user_id)
    if used >= quota:
        raise QuotaError(
            f"Your datasets and jobs take {used / 1024**2:,.0f} MB, your whole storage quota "
            f"({settings.user_quota_mb:,} MB). Delete old jobs in History (or old datasets) to make room, "
            "or ask the administrator to raise SLM_STUDIO_USER_QUOTA_MB."
        )
    return quota - used


def check_model_folder_is_theirs(storage: Storage, viewer: Viewer, spec: str | None) -> None:
    """A teacher or student given as a folder: never inside another user's job, and in a hosted studio
    only from the shared models folder (users must not read the server's files through the studio). In a
    hosted studio a path outside that folder is refused alike whether it exists or not: the answer says
    nothing about the server's files."""
    from studio.teacher import CATALOG  # torch: loaded only by the commands that check a model

    if not spec or spec in CATALOG:
        return
    settings = HostSettings.from_env()
    path = Path(spec).expanduser()
    if not path.exists():
        if settings.hosted and not HUB_ID.match(spec):
            raise ConfigError([_shared_only(settings)])
        return  # a hub id (or a missing folder on a laptop: loading says so)
    path = path.resolve()
    if path.is_relative_to(storage.store.root):
        parts = path.relative_to(storage.store.root).parts
        if len(parts) >= 2 and parts[0] == "jobs" and parts[1].isdigit():
            with storage.db.session() as s:
                job_rows.get(s, viewer, int(parts[1]))  # someone else's job: "there is no job N"
            return
        raise ConfigError([f"{spec} is inside the studio's own store; pick a model folder of a run in History"])
    if settings.hosted and not path.is_relative_to(settings.shared_models_dir().resolve()):
        raise ConfigError([_shared_only(settings)])


def check_endpoint_allowed(endpoint: str) -> None:
    """A hosted studio sends texts only to the teacher servers its administrator listed."""
    settings = HostSettings.from_env()
    if endpoint and settings.hosted and endpoint not in settings.teacher_endpoints:
        allowed = ", ".join(settings.teacher_endpoints) or "none are allowed"
        raise ConfigError(
            [
                f"this hosted studio does not send your texts to {endpoint}; the teacher servers it may ask are: "
                f"{allowed} (the administrator lists them in SLM_STUDIO_TEACHER_ENDPOINTS)"
            ]
        )


HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _shared_only(settings: HostSettings) -> str:
    return (
        f"in the hosted studio, model folders come from the shared models folder {settings.shared_models_dir()} "
        "(ask the administrator to put the model there), the catalog, or a finished run"
    )


def submit(
    storage: Storage,
    viewer: Viewer,
    kind: str,
    config: dict,
    *,
    parent_id: int | None = None,
    title: str = "",
    enqueue: bool = True,
    needs: list[str] | None = None,
) -> int:
    """Check the config whole, record the job, and (unless the caller runs it itself) queue it. Only a worker
    tagged with every word in ``needs`` runs it (e.g. ["gpu"])."""
    if kind not in KINDS:
        raise ConfigError([f"unknown job kind '{kind}'; use one of {', '.join(KINDS)}"])
    spec = KINDS[kind].spec.from_dict(config)  # every problem at once, before anything is stored
    quota_left(storage, viewer)  # a user whose files fill their quota starts no new job
    dataset_id = getattr(spec, "dataset_id", None)
    if kind == "distill":
        endpoint = (spec.distill.get("teacher_endpoint") or "").rstrip("/")
        check_endpoint_allowed(endpoint)
        for key in ("student",) if endpoint else ("teacher", "student"):  # a server's model name is no folder
            check_model_folder_is_theirs(storage, viewer, spec.distill.get(key))
    with storage.db.session() as s:
        if dataset_id:
            records.get_dataset(s, viewer, dataset_id)
        if KINDS[kind].needs_parent:
            if parent_id is None:
                raise ConfigError([f"a {kind} job works on a finished distillation: give its job id"])
            parent = job_rows.get(s, viewer, parent_id)
            if parent.kind != "distill" or parent.status != JobStatus.DONE:
                raise JobStateError(
                    f"Job {parent_id} is a {parent.kind} job that is {parent.status}; a {kind} job "
                    "needs a finished distillation. Wait for it to finish, or resume it."
                )
        if kind == "compress":
            _check_names_free(s, parent_id, spec)
        if kind == "export":
            _check_exportable(s, parent_id, spec.variant)
    bad = [tag for tag in needs or [] if not TAG.fullmatch(tag)]
    if bad:
        raise ConfigError([f"needs: '{t}' is not a worker tag; tags are short words (letters, digits, - or _)" for t in bad])
    job = job_rows.submit(
        storage.db,
        viewer.user_id,
        kind,
        spec.to_dict(),
        title=title,
        dataset_id=dataset_id,
        parent_id=parent_id,
        needs=needs,
    )
    if enqueue:
        _queue(storage).enqueue(job.id)
    return job.id


def taken_names(s, parent_id: int) -> dict[str, int]:
    """Variant names of a run already made or being made: name -> the job making it."""
    from studio.compress.pipeline import parse_recipe, recipe_names  # torch: only when compressing

    family = job_rows.descendants(s, parent_id)
    taken = {v.name: v.job_id for v in s.scalars(select(Variant).where(Variant.job_id.in_(family)))}
    for other in s.scalars(select(Job).where(Job.id.in_(family), Job.kind == "compress", Job.status != JobStatus.DONE)):
        recipes = [(name, parse_recipe(text)) for name, text in other.config.get("recipes", [])]
        taken.update({name: other.id for name in recipe_names(recipes)})
    return taken


def free_name(storage: Storage, viewer: Viewer, parent_id: int, name: str) -> str:
    """``name``, or ``name-2``, ``name-3``, ... : the first no variant of the run has (the browser's fixed names)."""
    with storage.db.session() as s:
        job_rows.get(s, viewer, parent_id)  # not theirs: NotFoundError
        taken = taken_names(s, parent_id)
    return next(n for n in (name, *(f"{name}-{i}" for i in range(2, 1000))) if n not in taken)


def _check_names_free(s, parent_id: int, spec) -> None:
    """Two compress jobs on one run must not make variants of the same name (one folder each)."""
    from studio.compress.pipeline import parse_recipe, recipe_names  # torch: only when compressing

    wanted = recipe_names([(name, parse_recipe(text)) for name, text in spec.recipes])
    taken = taken_names(s, parent_id)
    clashes = [
        f"a variant named '{n}' is made by job {taken[n]} on this run; give this one another name ('other-name=<recipe>')"
        for n in wanted
        if n in taken
    ]
    if clashes:
        raise ConfigError(clashes)


def _check_exportable(s, parent_id: int, name: str) -> None:
    if name in ("student", "teacher"):
        return
    found = records.find_variant(s, job_rows.descendants(s, parent_id), name)
    if found is None:
        raise ConfigError(
            [
                f"job {parent_id} has no variant named '{name}'; pick 'student', 'teacher' or one of "
                "the variants its compress jobs made"
            ]
        )
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

    return JobQueue(storage)


def deploy(
    storage: Storage,
    viewer: Viewer,
    job_id: int,
    model: str = "student",
    name: str = "",
    hybrid: bool = True,
    threshold: float | None = None,
):
    """Serve ``model`` of the finished run ``job_id`` under ``name`` (default: job<id>-<model>). The model must be
    one the run has (checked here, with the names there are); the run must be the caller's."""
    from storage import serving
    from studio.run import RunPaths

    with storage.db.session() as s:
        run = job_rows.get(s, viewer, job_id)
        folder = storage.store.local(run.folder) if run.folder else None
    if folder is None or not (folder / "config.json").exists():
        raise ConfigError([f"job {job_id} has no finished run to serve; pick a finished distillation"])
    paths = RunPaths(folder)
    paths.find_model(model)  # not one of the run's: ConfigError naming the ones there are
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ConfigError([f"the hand-over threshold must be from 0 to 1, not {threshold}"])
    task = paths.read_config()["task"]
    chosen = name.strip().lower() or re.sub(r"[^a-z0-9._-]+", "-", f"job{job_id}-{model}".lower())[:64]
    try:
        return serving.deploy(storage.db, viewer, job_id, model, chosen, task, hybrid, threshold)
    except ValueError as err:
        raise ConfigError([str(err)]) from None
