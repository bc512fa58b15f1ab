"""Job lifecycle in the database. Every state change is one conditional UPDATE, so two workers (or a
worker and the web app) can never both move the same job: the loser's UPDATE matches no row.

    queued ──claim──► running ──finish──► done | failed | cancelled
      │                  │ worker died (no heartbeat / dead pid)
      └─cancel─► cancelled  └──────────► interrupted ──resume──► queued

Every function that reads or changes a user's job takes a Viewer and filters by owner in the query
itself (admins see all), so another user's job looks exactly like a job that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.orm import Session

from storage.artifacts import ArtifactStore
from storage.db import Database
from storage.errors import JobLostError, JobStateError, NotFoundError
from storage.tables import Artifact, Job, JobStatus, Metric, User, Variant, utcnow

ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
RESUMABLE = (JobStatus.INTERRUPTED, JobStatus.CANCELLED, JobStatus.FAILED)
FINAL = (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.INTERRUPTED)


@dataclass(frozen=True)
class Viewer:
    """Who is asking: queries return only this user's rows unless they are an admin."""

    user_id: int
    is_admin: bool = False


def as_utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time we store is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def visible(query: Select, viewer: Viewer) -> Select:
    return query if viewer.is_admin else query.where(Job.owner_id == viewer.user_id)


# --------------------------------------------------------------------------- asking for work


def submit(
    db: Database,
    owner_id: int,
    kind: str,
    config: dict,
    *,
    title: str = "",
    dataset_id: int | None = None,
    parent_id: int | None = None,
    needs: list[str] | None = None,
) -> Job:
    """Record a queued job; its folder in the artifact store is jobs/<id>. Only a worker with every tag in
    ``needs`` runs it."""
    with db.session() as s:
        job = Job(
            owner_id=owner_id,
            kind=kind,
            config=config,
            title=title,
            dataset_id=dataset_id,
            parent_id=parent_id,
            needs=sorted(set(needs)) if needs else None,
            status=JobStatus.QUEUED,
            progress=0.0,
            step="waiting for a worker",
            attempt=0,
        )
        s.add(job)
        s.flush()
        job.folder = f"jobs/{job.id}"
        return job


MAX_ID = 2**31 - 1
"""Ids are 32-bit on every database; a larger (or negative) number names no record rather than failing."""


def get(s: Session, viewer: Viewer, job_id: int) -> Job:
    job = s.scalar(visible(select(Job).where(Job.id == job_id), viewer)) if 0 < job_id <= MAX_ID else None
    if job is None:
        raise NotFoundError(f"There is no job {job_id} among the jobs you can see: pick one from the job list (History).")
    return job


@dataclass(frozen=True)
class JobSummary:
    """One row of the history list."""

    id: int
    kind: str
    title: str
    status: str
    progress: float
    step: str
    owner_id: int
    owner: str
    created_at: datetime
    finished_at: datetime | None
    error: str | None
    last_loss: float | None


def jobs_ahead(s: Session, job: Job) -> int:
    """Queued or running jobs (anyone's) that the worker takes before ``job``: how long the wait may be."""
    waiting = (Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING])) & (Job.id != job.id)
    earlier = (Job.created_at < job.created_at) | ((Job.created_at == job.created_at) & (Job.id < job.id))
    return s.scalar(select(func.count()).select_from(Job).where(waiting & earlier)) or 0


def list_jobs(
    s: Session, viewer: Viewer, *, limit: int = 50, offset: int = 0, status: str | None = None, kind: str | None = None
) -> list[JobSummary]:
    """Newest first, one page; with each job's latest training loss (one indexed query for the page)."""
    query = (
        visible(select(Job, User.name).join(User, User.id == Job.owner_id), viewer)
        .order_by(Job.created_at.desc(), Job.id.desc())
        .limit(limit)
        .offset(offset)
    )
    if status:
        query = query.where(Job.status == status)
    if kind:
        query = query.where(Job.kind == kind)
    rows = s.execute(query).all()
    losses = last_values(s, [j.id for j, _ in rows], "loss")
    return [
        JobSummary(
            j.id,
            j.kind,
            j.title,
            j.status,
            j.progress,
            j.step,
            j.owner_id,
            owner,
            as_utc(j.created_at),
            as_utc(j.finished_at),
            j.error,
            losses.get(j.id),
        )
        for j, owner in rows
    ]


def last_values(s: Session, job_ids: list[int], name: str) -> dict[int, float]:
    """The latest training value of metric `name`, per job (the newest row: the stage training now)."""
    if not job_ids:
        return {}
    # Training metrics and scores never share a name, so (job_id, name) finds them on the metrics index
    # alone (filtering on variant_id too makes SQLite pick the variant index and scan every training row).
    newest = (
        select(func.max(Metric.id).label("id"))
        .where(Metric.job_id.in_(job_ids), Metric.name == name)
        .group_by(Metric.job_id)
        .subquery()
    )
    rows = s.execute(select(Metric.job_id, Metric.value).join(newest, Metric.id == newest.c.id))
    return {job_id: value for job_id, value in rows}


def count_jobs(s: Session, viewer: Viewer) -> int:
    return s.scalar(visible(select(func.count(Job.id)), viewer))


# --------------------------------------------------------------------------- a worker's side


def claim(db: Database, job_id: int, worker: str) -> bool:
    """Take a queued job. False when someone else took it, or it was cancelled meanwhile."""
    now = utcnow()
    with db.session() as s:
        done = s.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
            .values(
                status=JobStatus.RUNNING,
                worker=worker,
                heartbeat_at=now,
                started_at=now,
                finished_at=None,
                error=None,
                cancel_requested=False,
                attempt=Job.attempt + 1,
                step="starting",
                rendezvous=None,  # a job on several machines: its first machine says where they meet, per attempt
                machines_joined=0,
            )
        )
        return done.rowcount == 1


def current_attempt(db: Database, job_id: int) -> int:
    with db.session() as s:
        return s.scalar(select(Job.attempt).where(Job.id == job_id))


def _mine(job_id: int, attempt: int | None):
    """The WHERE of every write a running job makes: still running, and still this attempt. A process
    that lost its job (marked interrupted, then resumed elsewhere) matches nothing and learns it."""
    where = [Job.id == job_id, Job.status == JobStatus.RUNNING]
    return where + ([Job.attempt == attempt] if attempt is not None else [])


def set_worker(db: Database, job_id: int, worker: str, attempt: int | None = None) -> None:
    """The process that really runs the job (a child of the worker) takes over the heartbeat."""
    with db.session() as s:
        s.execute(update(Job).where(*_mine(job_id, attempt)).values(worker=worker, heartbeat_at=utcnow()))


def heartbeat(db: Database, job_id: int, attempt: int | None = None) -> bool:
    """Say the job is alive. Returns True when the user asked it to stop; raises JobLostError when the
    job is no longer this process's to run."""
    with db.session() as s:
        if s.execute(update(Job).where(*_mine(job_id, attempt)).values(heartbeat_at=utcnow())).rowcount != 1:
            raise JobLostError(job_id)
        return bool(s.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def report(
    db: Database, job_id: int, progress: float, step: str, metrics: Iterable[dict] = (), attempt: int | None = None
) -> bool:
    """Progress (0..1), what is happening, and new metric rows, in one commit. Returns cancel_requested;
    raises JobLostError (writing nothing) when the job is no longer this process's to run."""
    rows = [{"job_id": job_id, "recorded_at": utcnow(), **m} for m in metrics]
    with db.session() as s:
        moved = s.execute(
            update(Job)
            .where(*_mine(job_id, attempt))
            .values(progress=max(0.0, min(1.0, progress)), step=step[:255], heartbeat_at=utcnow())
        )
        if moved.rowcount != 1:
            raise JobLostError(job_id)
        if rows:
            s.execute(Metric.__table__.insert(), rows)
        return bool(s.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def waiting(db: Database, job_id: int, step: str) -> None:
    """What a queued job waits for, in words (a queued job only: a claimed one says what it does itself)."""
    with db.session() as s:
        s.execute(update(Job).where(Job.id == job_id, Job.status == JobStatus.QUEUED).values(step=step[:255]))


def ask_to_stop(db: Database, job_id: int) -> None:
    """Ask a running job to stop after its current step (the process that runs it here was told Ctrl-C)."""
    with db.session() as s:
        s.execute(update(Job).where(Job.id == job_id, Job.status == JobStatus.RUNNING).values(cancel_requested=True))


def open_rendezvous(db: Database, job_id: int, where: str, attempt: int) -> None:
    """The first machine of a job that trains on several says where they meet; it is machine 0 of them."""
    with db.session() as s:
        s.execute(update(Job).where(*_mine(job_id, attempt)).values(rendezvous=where, machines_joined=1))


def take_machine(db: Database, job_id: int, machines: int) -> tuple[int, str, int] | None:
    """Another machine takes its part of a running job that trains on several: (its machine rank, where they meet,
    the attempt), or None when the job no longer runs or has all its machines. One conditional UPDATE: two
    machines never get the same rank."""
    with db.session() as s:
        row = s.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.status == JobStatus.RUNNING,
                Job.rendezvous.is_not(None),
                Job.machines_joined < machines,
            )
            .values(machines_joined=Job.machines_joined + 1)
            .returning(Job.machines_joined, Job.rendezvous, Job.attempt)
        ).first()
        return (row[0] - 1, row[1], row[2]) if row else None


def forget_metrics_after(db: Database, job_id: int, stage: str, step: int, label: str = "") -> int:
    """Before a resumed run repeats steps after its checkpoint, drop the rows the crash left for them."""
    with db.session() as s:
        gone = s.execute(
            delete(Metric).where(
                Metric.job_id == job_id,
                Metric.stage == stage,
                Metric.label == label,
                Metric.variant_id.is_(None),
                Metric.step > step,
            )
        )
        return gone.rowcount


def finish(db: Database, job_id: int, status: str, error: str | None = None, attempt: int | None = None) -> bool:
    """Close a running job (done, failed, cancelled, or interrupted when its worker is shutting down)."""
    if status not in FINAL:
        raise ValueError(f"finish() takes one of {FINAL}, not {status}")
    values = {"status": status, "error": error, "finished_at": utcnow(), "heartbeat_at": utcnow()}
    if status == JobStatus.DONE:
        values.update(progress=1.0, step="finished")
    with db.session() as s:
        return s.execute(update(Job).where(*_mine(job_id, attempt)).values(**values)).rowcount == 1


def recover_orphans(
    db: Database, *, stale_after: float, host: str | None = None, process_alive: Callable[[str], bool] | None = None
) -> list[int]:
    """Mark running jobs whose worker died as interrupted. A job run on `host` (this machine) is judged by
    its process alone (a laptop that slept is not a dead worker); a job on another machine by silence:
    no heartbeat for `stale_after` seconds. `worker` reads 'host:process'; `process_alive` gets the
    process part. Returns the ids marked. Safe to run anywhere, any time."""
    cutoff = utcnow() - timedelta(seconds=stale_after)
    with db.session() as s:
        running = s.execute(
            select(Job.id, Job.attempt, Job.worker, Job.heartbeat_at, Job.step).where(Job.status == JobStatus.RUNNING)
        ).all()
        dead = []
        for job_id, attempt, worker, beat, step in running:
            w_host, _, process = (worker or "").rpartition(":")
            if host is not None and process_alive is not None and w_host == host:
                gone = not process_alive(process)
            else:
                gone = beat is None or as_utc(beat) < cutoff
            if gone:
                dead.append((job_id, attempt, step))
        marked = []
        for job_id, attempt, step in dead:
            marked += (
                [job_id]
                if s.execute(
                    update(Job)
                    .where(*_mine(job_id, attempt))
                    .values(
                        status=JobStatus.INTERRUPTED,
                        finished_at=utcnow(),
                        error=f"The worker running this job stopped unexpectedly (during: {step}). "
                        "Resume it to continue from its last checkpoint.",
                    )
                ).rowcount
                else []
            )
        return marked


# --------------------------------------------------------------------------- a user's side


def request_cancel(db: Database, viewer: Viewer, job_id: int) -> str:
    """A queued job is cancelled at once; a running one is asked to stop after its current step.

    Returns the status the job now has ('cancelled', or 'running' while it winds down)."""
    with db.session() as s:
        job = get(s, viewer, job_id)  # visible to this user, or NotFoundError
        if s.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
            .values(status=JobStatus.CANCELLED, finished_at=utcnow(), step="cancelled before it started")
        ).rowcount:
            return JobStatus.CANCELLED
        if s.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == JobStatus.RUNNING)
            .values(cancel_requested=True, step="stopping after this step")
        ).rowcount:
            return JobStatus.RUNNING
        s.refresh(job)
        raise JobStateError(f"Job {job_id} is {job.status}; only a queued or running job can be cancelled.")


def resume(db: Database, viewer: Viewer, job_id: int) -> None:
    """Queue an interrupted, cancelled or failed job again; it continues from its last checkpoint."""
    with db.session() as s:
        job = get(s, viewer, job_id)
        if job.status not in RESUMABLE:
            raise JobStateError(f"Job {job_id} is {job.status}; only an interrupted, cancelled or failed job can be resumed.")
        s.execute(
            update(Job)
            .where(Job.id == job_id, Job.status.in_(RESUMABLE))
            .values(status=JobStatus.QUEUED, error=None, finished_at=None, cancel_requested=False, step="waiting for a worker")
        )


def delete_job(db: Database, store: ArtifactStore, viewer: Viewer, job_id: int) -> list[int]:
    """Delete a job, the jobs built on it, their rows and their files. Returns the ids deleted.

    Rows go first (one commit); files after. A crash in between leaves only unreferenced files, which
    `sweep_unreferenced` removes; never a row pointing at a missing file."""
    with db.session() as s:
        job = get(s, viewer, job_id)
        family = descendants(s, job.id)
        busy = s.scalars(select(Job.id).where(Job.id.in_(family), Job.status.in_(ACTIVE))).all()
        if busy:
            raise JobStateError(f"Job {', '.join(map(str, busy))} is still queued or running. Cancel it first, then delete.")
        folders = list(s.scalars(select(Job.folder).where(Job.id.in_(family))))
        paths = list(s.scalars(select(Artifact.path).where(Artifact.job_id.in_(family))))
        paths += [p for p in s.scalars(select(Variant.path).where(Variant.job_id.in_(family), Variant.role != "teacher")) if p]
        gone = sum(
            s.execute(delete(Job).where(Job.id == member, Job.status.not_in(ACTIVE))).rowcount for member in reversed(family)
        )  # leaves first, so no row goes by cascade uncounted
        if gone != len(family):  # one was resumed and claimed in the meantime: delete nothing
            raise JobStateError(f"Job {job_id} or one built on it started running just now. Cancel it first, then delete.")
    for relative in paths + [f for f in folders if f]:
        store.delete(relative)
    return family


def descendants(s: Session, job_id: int) -> list[int]:
    """The job and every job built on it (compress and evaluate jobs on a run), at any depth."""
    family, frontier = [job_id], [job_id]
    while frontier:
        frontier = list(s.scalars(select(Job.id).where(Job.parent_id.in_(frontier))))
        family += frontier
    return family


def sweep_unreferenced(db: Database, store: ArtifactStore) -> list[str]:
    """Remove job folders no job row points at (left by a crash during a delete).

    Only ids at or below the newest job seen are touched, so a job submitted meanwhile keeps its folder."""
    with db.session() as s:
        known = set(s.scalars(select(Job.folder)))
        newest = s.scalar(select(func.max(Job.id))) or 0
    removed = []
    for name in sorted(store.folders_under("jobs")):  # here, and in the shared object store when there is one
        relative = f"jobs/{name}"
        if name.isdigit() and int(name) <= newest and relative not in known:
            store.delete(relative)
            removed.append(relative)
    return removed
