"""The studio's records: SQLAlchemy 2.0 typed models. Metadata only; files live in the artifact store.

    users ─┬─ sessions                       (a login: hashed token, expiry; revoked by deleting the row)
           ├─ datasets                       (an uploaded file, checked and split)
           └─ jobs ─┬─ variants ── metrics   (teacher / student / quantized / pruned, and their scores)
                    ├─ metrics               (per training step: loss curves)
                    └─ artifacts             (files on disk: path, sha256, bytes)
    workers                                  (a worker process: its machine's cores, memory, GPUs, and its tags)
    users ─┬─ api_keys                       (a program's key to the served models: hashed, revocable)
           └─ deployments ── jobs            (a model of a run served over HTTP: who, which, since when)

A job is a config (JSON) plus a kind; everything a job makes hangs off it and goes when it goes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobStatus(StrEnum):
    """A job's life: queued -> running -> one of the final four. Resumable: interrupted, cancelled, failed."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    """Its worker stopped (shut down, or died) before it finished; resume it from its last checkpoint."""


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: DateTime(timezone=True)}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    """None for the local user of a laptop install, who never logs in."""
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoginSession(Base):
    """One login of a hosted user. The browser holds a random token; only its SHA-256 is stored, so a copy
    of the database opens no session. Logging out, a new password or a disabled account delete the rows."""

    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    """The latest moment it is good for, however busy."""
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    """Written at most once a minute; a session idle for longer than the idle limit ends."""
    address: Mapped[str] = mapped_column(String(64), default="")
    """The client address it was opened from (for the administrator)."""


class WizardState(Base):
    """Where a user is in the browser's wizard (teacher, dataset, preset), so a reload, a second tab or another
    machine opens where they left off. One row per user; the keys are storage.wizard.KEYS."""

    __tablename__ = "wizard_state"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    """The file name the user gave; never used as a path."""
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    rows: Mapped[int] = mapped_column(Integer)
    columns: Mapped[list[Any]] = mapped_column(JSON)
    task: Mapped[str] = mapped_column(String(32))
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The validation report: detected columns, encoding, label counts, warnings, split sizes."""
    path: Mapped[str] = mapped_column(String(500))
    """Folder of the prepared splits, relative to the artifact store."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_owner_created", "owner_id", "created_at"),
        Index("ix_jobs_status", "status"),
        {"sqlite_autoincrement": True},
    )  # ids never reused: a job never inherits a deleted job's folder

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    """distill, compress, evaluate or export."""
    title: Mapped[str] = mapped_column(String(255), default="")
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    """The job whose outputs this one works on (a compress job's distillation run)."""
    status: Mapped[str] = mapped_column(String(16), default="queued")
    """queued, running, done, failed, cancelled, interrupted."""
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    """0..1 over the whole job."""
    step: Mapped[str] = mapped_column(String(255), default="")
    """What the job is doing now, in words."""
    error: Mapped[str | None] = mapped_column(Text)
    """A message for the user; the traceback, if any, is in the job's log file."""
    folder: Mapped[str] = mapped_column(String(500), default="")
    """The job's working folder, relative to the artifact store."""
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    """How many times a worker has started it (resumes count)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    # Liveness (revision 0002): who runs it, when it last said so, and whether the user asked it to stop.
    worker: Mapped[str | None] = mapped_column(String(255))
    """host:pid of the process running the job."""
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    needs: Mapped[list[Any] | None] = mapped_column(JSON)
    """Tags the worker that runs it must have (revision 0006), e.g. ["gpu"]; none: any worker."""
    rendezvous: Mapped[str | None] = mapped_column(String(255))
    """A job that trains on several machines: host:port where their processes meet (its first machine's)."""
    machines_joined: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """How many machines have taken their part of this attempt (the first one counts)."""

    variants: Mapped[list[Variant]] = relationship(back_populates="job", cascade="all, delete-orphan", passive_deletes=True)
    artifacts: Mapped[list[Artifact]] = relationship(back_populates="job", cascade="all, delete-orphan", passive_deletes=True)


class Worker(Base):
    """A worker process that takes jobs from the queue (revision 0006): where it runs, what the machine offers, and
    its tags. It writes its row on start and every sweep (seen_at) and deletes it on a clean stop."""

    __tablename__ = "workers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    """host#boot:pid.start of the worker's process (studio.jobs.process_id)."""
    host: Mapped[str] = mapped_column(String(255))
    cores: Mapped[int] = mapped_column(Integer)
    memory_bytes: Mapped[int] = mapped_column(BigInteger)
    gpus: Mapped[int] = mapped_column(Integer)
    gpu_names: Mapped[str] = mapped_column(String(500), default="", server_default="")
    tags: Mapped[list[Any]] = mapped_column(JSON)
    slots: Mapped[int] = mapped_column(Integer)
    """Jobs it runs at once."""
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class Variant(Base):
    __tablename__ = "variants"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(16))
    """teacher, student, quantized or pruned."""
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("variants.id", ondelete="SET NULL"))
    method: Mapped[str] = mapped_column(String(255), default="")
    """The recipe that made it, e.g. 'prune-heads:fraction=0.5+heal+int8'; '' for teacher and student."""
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="ok")
    """ok, unsupported or failed."""
    path: Mapped[str] = mapped_column(String(500), default="")
    """Folder relative to the artifact store ('' when the model lives elsewhere, e.g. a catalog teacher)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    job: Mapped[Job] = relationship(back_populates="variants")


class Metric(Base):
    """One number: a training step's loss (variant_id empty) or a variant's score (step empty)."""

    __tablename__ = "metrics"
    __table_args__ = (Index("ix_metrics_job_name_step", "job_id", "name", "step"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    variant_id: Mapped[int | None] = mapped_column(ForeignKey("variants.id", ondelete="CASCADE"), index=True)
    stage: Mapped[str] = mapped_column(String(32), default="")
    """What kind of training (teacher, student, heal, ...); 'eval' for scores."""
    label: Mapped[str] = mapped_column(String(200), default="", server_default="")
    """Which one of its kind: 'lr 0.0001' for a learning-rate trial, '<variant>#<step>' for a heal."""
    name: Mapped[str] = mapped_column(String(64))
    step: Mapped[int | None] = mapped_column(Integer)
    epoch: Mapped[int | None] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class Artifact(Base):
    __tablename__ = "artifacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    variant_id: Mapped[int | None] = mapped_column(ForeignKey("variants.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(32))
    """model, tokenizer, dataset, metrics, report, log, export, ..."""
    path: Mapped[str] = mapped_column(String(500), unique=True)
    """Relative to the artifact store root."""
    sha256: Mapped[str] = mapped_column(String(64))
    bytes: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    job: Mapped[Job] = relationship(back_populates="artifacts")


class ApiKey(Base):
    """A key a program uses to call its owner's served models (revision 0007). Only its SHA-256 is stored, and
    its first characters to tell keys apart; revoking one keeps the row (who made it, when, when it was last used)."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    prefix: Mapped[str] = mapped_column(String(16))
    """The key's first characters ('slm-AbC1…'), shown in the list."""
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()
    """Written at most once a minute."""


class Deployment(Base):
    """A model of a finished run served over HTTP under a name of its owner's (revision 0007). Stopping it keeps
    the row (stopped_at); a restart of the studio serves every one not stopped."""

    __tablename__ = "deployments"
    __table_args__ = (Index("ix_deployments_user_name", "user_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    """The distillation run the model belongs to."""
    model: Mapped[str] = mapped_column(String(120))
    """Which model of the run: student, teacher or a variant's name."""
    name: Mapped[str] = mapped_column(String(64))
    """What programs call it ('support-triage'), unique among its owner's deployments that are not stopped."""
    task: Mapped[str] = mapped_column(String(32))
    hybrid: Mapped[bool] = mapped_column(Boolean, default=True)
    """The teacher answers when the model is less sure than the threshold."""
    threshold: Mapped[float | None] = mapped_column(Float)
    """The hand-over threshold (None: the one the run's evaluation chose)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column()
