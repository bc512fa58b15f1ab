"""Users, datasets, variants, metrics and artifacts: what jobs produce and the history shows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.artifacts import ArtifactStore, StoredFile
from storage.db import Database
from storage.errors import ArtifactError, DatabaseError, JobStateError, NotFoundError
from storage.jobs import MAX_ID, Viewer, descendants, get, visible
from storage.tables import Artifact, Dataset, Job, JobStatus, Metric, User, Variant

LOCAL_USER = "local"


def local_user(db: Database) -> Viewer:
    """The one user of a laptop install (no login). Created on first use (two requests at once: one makes it, the
    other finds it)."""
    for _ in range(2):
        try:
            with db.session() as s:
                user = s.scalar(select(User).where(User.name == LOCAL_USER))
                if user is None:
                    user = User(name=LOCAL_USER, password_hash=None, is_admin=False)
                    s.add(user)
                    s.flush()
                return Viewer(user.id, user.is_admin)
        except IntegrityError:  # made by another request between our look and our insert: look again
            continue
    raise DatabaseError("the local user could not be created; check the database")


def create_user(db: Database, name: str, password_hash: str | None, is_admin: bool = False) -> Viewer:
    with db.session() as s:
        user = User(name=name, password_hash=password_hash, is_admin=is_admin)
        s.add(user)
        s.flush()
        return Viewer(user.id, user.is_admin)


def find_user(s: Session, name: str) -> User | None:
    return s.scalar(select(User).where(User.name == name))


def is_admin(s: Session, user_id: int) -> bool:
    return bool(s.scalar(select(User.is_admin).where(User.id == user_id)))


def list_users(s: Session) -> list[User]:
    return list(s.scalars(select(User).where(User.password_hash.is_not(None)).order_by(User.id)))


def set_password(db: Database, name: str, password_hash: str | None) -> bool:
    """Replace a user's password hash; False when there is no such user."""
    with db.session() as s:
        user = find_user(s, name)
        if user is None or user.name == LOCAL_USER:
            return False
        user.password_hash = password_hash
        return True


# --------------------------------------------------------------------------- datasets


def add_dataset(
    db: Database, owner_id: int, *, name: str, sha256: str, rows: int, columns: list, task: str, report: dict, path: str
) -> int:
    with db.session() as s:
        ds = Dataset(
            owner_id=owner_id, name=name[:255], sha256=sha256, rows=rows, columns=columns, task=task, report=report, path=path
        )
        s.add(ds)
        s.flush()
        return ds.id


def get_dataset(s: Session, viewer: Viewer, dataset_id: int) -> Dataset:
    query = select(Dataset).where(Dataset.id == dataset_id)
    if not viewer.is_admin:
        query = query.where(Dataset.owner_id == viewer.user_id)
    ds = s.scalar(query) if 0 < dataset_id <= MAX_ID else None
    if ds is None:
        raise NotFoundError(f"There is no dataset {dataset_id} (among the datasets you can see).")
    return ds


def same_dataset(s: Session, store: ArtifactStore, viewer: Viewer, sha256: str, folder: str) -> int | None:
    """This user's dataset made from the same bytes into exactly the same checked splits, if any."""

    def splits(relative: str) -> dict[str, str]:
        return {f.path.rsplit("/", 1)[1]: f.sha256 for f in store.files_under(relative) if f.path.endswith(".jsonl")}

    mine = None
    for ds in s.scalars(select(Dataset).where(Dataset.owner_id == viewer.user_id, Dataset.sha256 == sha256)):
        mine = mine or splits(folder)
        if store.local(ds.path).is_dir() and splits(ds.path) == mine:
            return ds.id
    return None


def stored_bytes(s: Session, store: ArtifactStore, user_id: int) -> int:
    """What one user's datasets and jobs take in the artifact store (their quota counts this)."""
    folders = list(s.scalars(select(Dataset.path).where(Dataset.owner_id == user_id)))
    folders += list(s.scalars(select(Job.folder).where(Job.owner_id == user_id)))
    return sum(store.bytes_under(folder) for folder in folders if folder and (store.remote or store.resolve(folder).exists()))


def list_datasets(s: Session, viewer: Viewer) -> list[Dataset]:
    query = select(Dataset).order_by(Dataset.created_at.desc())
    if not viewer.is_admin:
        query = query.where(Dataset.owner_id == viewer.user_id)
    return list(s.scalars(query))


def delete_dataset(db: Database, store: ArtifactStore, viewer: Viewer, dataset_id: int) -> None:
    """Delete a dataset and its files; refused while a job still uses it (its run reads the splits)."""
    with db.session() as s:
        ds = get_dataset(s, viewer, dataset_id)
        users = list(s.scalars(select(Job.id).where(Job.dataset_id == dataset_id).order_by(Job.id)))
        if users:
            raise JobStateError(f"Dataset {dataset_id} is used by job(s) {', '.join(map(str, users))}; delete those jobs first.")
        path = ds.path
        s.delete(ds)
    store.delete(path)


# --------------------------------------------------------------------------- variants and metrics


def put_variant(
    db: Database,
    job_id: int,
    *,
    name: str,
    role: str,
    path: str = "",
    method: str = "",
    settings: dict | None = None,
    status: str = "ok",
    parent_id: int | None = None,
) -> int:
    """Record a job's variant; a resumed job recording the same name again updates it (never a second row)."""
    with db.session() as s:
        variant = s.scalar(select(Variant).where(Variant.job_id == job_id, Variant.name == name))
        if variant is None:
            variant = Variant(job_id=job_id, name=name)
            s.add(variant)
        variant.role, variant.path, variant.method, variant.settings = role, path, method, settings or {}
        variant.status, variant.parent_id = status, parent_id
        s.flush()
        return variant.id


def find_variant(s: Session, job_ids: list[int], name: str) -> Variant | None:
    """The newest variant of that name among these jobs (a run and the compress jobs on it)."""
    return s.scalar(select(Variant).where(Variant.job_id.in_(job_ids), Variant.name == name).order_by(Variant.id.desc()))


def variants_of(s: Session, viewer: Viewer, job_id: int) -> list[Variant]:
    get(s, viewer, job_id)
    return list(s.scalars(select(Variant).where(Variant.job_id == job_id).order_by(Variant.id)))


def add_scores(db: Database, job_id: int, variant_id: int, scores: dict[str, float]) -> None:
    """A variant's evaluation: one metric row per number (accuracy, latency_ms, size_bytes, ...). A new
    evaluation replaces the variant's previous one."""
    with db.session() as s:
        s.execute(delete(Metric).where(Metric.variant_id == variant_id, Metric.stage == "eval"))
        s.add_all(
            Metric(job_id=job_id, variant_id=variant_id, stage="eval", name=name, value=float(value))
            for name, value in scores.items()
        )


def scores_of(s: Session, variant_id: int) -> dict[str, float]:
    """A variant's latest evaluation, by metric name."""
    rows = s.execute(select(Metric.name, Metric.value).where(Metric.variant_id == variant_id).order_by(Metric.id))
    return dict(rows.all())


@dataclass(frozen=True)
class ModelRow:
    """One model of a run as the job history keeps it: what it is, how it came out, its latest scores."""

    name: str
    role: str
    """teacher, student, quantized, pruned, baseline, ..."""
    method: str
    status: str
    job_id: int
    scores: dict[str, float]

    def with_scores(self) -> dict:
        """{'name', 'status', and each score}: a row of a table of models."""
        return {"name": self.name, "status": self.status, **self.scores}


def run_models(s: Session, viewer: Viewer, run_id: int, *, made_from: bool = True) -> list[ModelRow]:
    """The models of a job with their scores: those it recorded and, with ``made_from``, every variant made from
    it since (compress jobs on a run), among the jobs the viewer may see. Re-measurements (evaluate jobs) add
    no models. Compare, Export and the CLI's ``show`` read models this one way."""
    get(s, viewer, run_id)  # not the viewer's: NotFoundError, never someone else's models
    family = descendants(s, run_id) if made_from else [run_id]
    jobs = select(Job.id).where(Job.id.in_(family), or_(Job.kind != "evaluate", Job.id == run_id))
    variants = s.scalars(select(Variant).where(Variant.job_id.in_(visible(jobs, viewer))).order_by(Variant.id))
    return [ModelRow(v.name, v.role, v.method, v.status, v.job_id, scores_of(s, v.id)) for v in variants]


def training_curve(s: Session, viewer: Viewer, job_id: int, name: str = "loss") -> list[tuple[str, int, float]]:
    """(curve, step, value) of one training metric, in step order: what a loss chart draws. A curve is a stage
    and its label as people read them, e.g. 'teacher', 'heal int8-heal#2'."""
    get(s, viewer, job_id)
    rows = s.execute(
        select(Metric.stage, Metric.label, Metric.step, Metric.value)
        .where(Metric.job_id == job_id, Metric.name == name, Metric.variant_id.is_(None))
        .order_by(Metric.id)
    )  # the order they were trained in
    return [(f"{stage} {label}".strip(), step, value) for stage, label, step, value in rows]


# --------------------------------------------------------------------------- artifacts


def record_artifacts(db: Database, job_id: int, files: Iterable[StoredFile], kind: str, variant_id: int | None = None) -> int:
    """Record files already in the store; a file this job recorded before is updated, not doubled.

    A file another job recorded stays that job's (ArtifactError): deleting this job must never take it."""
    count = 0
    with db.session() as s:
        for f in files:
            row = s.scalar(select(Artifact).where(Artifact.path == f.path))
            if row is None:
                s.add(Artifact(job_id=job_id, variant_id=variant_id, kind=kind, path=f.path, sha256=f.sha256, bytes=f.bytes))
            elif row.job_id != job_id:
                raise ArtifactError(f"{f.path} belongs to job {row.job_id}; a job records only files it made.")
            else:
                row.variant_id, row.kind, row.sha256, row.bytes = variant_id, kind, f.sha256, f.bytes
            count += 1
    return count


def artifacts_of(s: Session, viewer: Viewer, job_id: int) -> list[Artifact]:
    get(s, viewer, job_id)
    return list(s.scalars(select(Artifact).where(Artifact.job_id == job_id).order_by(Artifact.path)))


def verify_artifacts(s: Session, store: ArtifactStore, viewer: Viewer, job_id: int) -> list[str]:
    """Problems with a job's files (missing, or changed since they were recorded)."""
    problems = []
    for a in artifacts_of(s, viewer, job_id):
        try:
            store.verify(StoredFile(a.path, a.sha256, a.bytes))
        except Exception as err:  # noqa: BLE001 - each problem is reported, none stops the check
            problems.append(str(err))
    return problems


def finished_runs(s: Session, viewer: Viewer, kind: str = "distill", limit: int = 10) -> list[tuple[Job, Dataset]]:
    """This user's own finished ``kind`` jobs that ran in one go (a resumed one's start time is its last
    resume), with their datasets, newest first: what their times say of the next run on this machine."""
    query = (
        select(Job, Dataset)
        .join(Dataset, Dataset.id == Job.dataset_id)
        .where(
            Job.owner_id == viewer.user_id,
            Job.kind == kind,
            Job.status == JobStatus.DONE,
            Job.attempt == 1,
            Job.started_at.is_not(None),
            Job.finished_at.is_not(None),
        )
        .order_by(Job.finished_at.desc(), Job.id.desc())
        .limit(limit)
    )
    return [(job, ds) for job, ds in s.execute(query).all()]


def jobs_made_from(s: Session, viewer: Viewer, run_id: int, kind: str = "compress") -> list[Job]:
    """The ``kind`` jobs started on run ``run_id`` (its variants' jobs), oldest first, among those the viewer sees."""
    get(s, viewer, run_id)
    return list(s.scalars(visible(select(Job).where(Job.parent_id == run_id, Job.kind == kind), viewer).order_by(Job.id)))
