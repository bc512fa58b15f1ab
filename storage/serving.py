"""Serving records: the keys programs call the served models with, and which models are served.

A key is shown once, when it is made; only its SHA-256 is kept (and its first characters, to tell keys apart), so
a copy of the database calls nothing. A key reaches its owner's served models only. A deployment is a model of a
finished run served under a name of its owner's; stopping one keeps its row, and the studio serves again, after a
restart, every deployment not stopped.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Row, bindparam, select, update

from storage import jobs as job_rows
from storage.db import Database
from storage.errors import JobStateError, NotFoundError, StorageError
from storage.jobs import Viewer, as_utc
from storage.records import LOCAL_USER
from storage.tables import ApiKey, Deployment, Job, JobStatus, User, utcnow

KEY_START = "slm-"
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
TOUCH_EVERY = timedelta(minutes=1)
"""last_used_at is written at most this often."""


class NameTakenError(StorageError):
    pass


@dataclass(frozen=True)
class KeyRow:
    id: int
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True)
class NewKey:
    id: int
    key: str
    """The whole key: shown to its owner once, never stored."""
    prefix: str


@dataclass(frozen=True)
class DeploymentRow:
    id: int
    user_id: int
    job_id: int
    model: str
    name: str
    task: str
    hybrid: bool
    threshold: float | None
    created_at: datetime
    stopped_at: datetime | None
    owner: str = ""
    """The owner's user name."""


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()


def _key_row(row: ApiKey) -> KeyRow:
    return KeyRow(row.id, row.name, row.prefix, as_utc(row.created_at), as_utc(row.revoked_at), as_utc(row.last_used_at))


def make_key(db: Database, viewer: Viewer, name: str = "") -> NewKey:
    key = KEY_START + secrets.token_urlsafe(32)
    prefix = key[: len(KEY_START) + 6]
    with db.session() as s:
        row = ApiKey(user_id=viewer.user_id, name=name.strip()[:120], prefix=prefix, key_hash=_digest(key), created_at=utcnow())
        s.add(row)
        s.flush()
        return NewKey(row.id, key, prefix)


def keys_of(db: Database, viewer: Viewer) -> list[KeyRow]:
    """The user's own keys, newest first (an administrator too sees only their own: a key is personal)."""
    with db.session() as s:
        rows = s.scalars(select(ApiKey).where(ApiKey.user_id == viewer.user_id).order_by(ApiKey.id.desc()))
        return [_key_row(r) for r in rows]


def revoke_key(db: Database, viewer: Viewer, key_id: int) -> None:
    with db.session() as s:
        row = s.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == viewer.user_id))
        if row is None:
            raise NotFoundError(f"You have no key {key_id}: pick one from your list of keys.")
        if row.revoked_at is None:
            row.revoked_at = utcnow()


_KEY_OWNER = (
    select(
        ApiKey.id, ApiKey.revoked_at, ApiKey.last_used_at, User.id.label("user_id"), User.is_admin, User.password_hash, User.name
    )
    .join(User, User.id == ApiKey.user_id)
    .where(ApiKey.key_hash == bindparam("digest"))
)


@dataclass(frozen=True)
class KeyOwner:
    viewer: Viewer
    key_id: int
    touch_due: bool
    """last_used_at is older than TOUCH_EVERY: write it (touch_key)."""


def key_owner(db: Database, key: str | None) -> KeyOwner | None:
    """Who a key belongs to; None when it is unknown, revoked, or its owner can no longer log in (hosted).

    Read on every API call (nothing cached: a revoke is seen by the next call), through a plain connection, a fifth
    of an ORM session's cost, and only read: the API may make it on its event loop (studio.serve.api)."""
    if not key or len(key) > 256 or not key.startswith(KEY_START):
        return None
    with db.engine.connect() as c:
        found = c.execute(_KEY_OWNER, {"digest": _digest(key)}).first()
    if found is None or found.revoked_at is not None or (not found.password_hash and found.name != LOCAL_USER):
        return None  # disabled users make no calls
    used = as_utc(found.last_used_at)
    return KeyOwner(Viewer(found.user_id, found.is_admin), found.id, used is None or utcnow() - used >= TOUCH_EVERY)


def touch_key(db: Database, key_id: int) -> None:
    with db.session() as s:
        s.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utcnow()))


def _deployment_row(row: Deployment | Row, owner: str = "") -> DeploymentRow:
    """From an ORM object or a plain row of the deployments table (the same column names)."""
    return DeploymentRow(
        row.id,
        row.user_id,
        row.job_id,
        row.model,
        row.name,
        row.task,
        row.hybrid,
        row.threshold,
        as_utc(row.created_at),
        as_utc(row.stopped_at),
        owner,
    )


def deploy(
    db: Database, viewer: Viewer, job_id: int, model: str, name: str, task: str, hybrid: bool, threshold: float | None
) -> DeploymentRow:
    """Serve ``model`` of the finished run ``job_id`` as ``name``. The run must be the caller's (checked here)."""
    if not NAME.fullmatch(name):
        raise ValueError(
            f"'{name[:70]}' cannot name a served model: use 1-64 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (e.g. support-triage)"
        )
    with db.session() as s:
        run = job_rows.get(s, viewer, job_id)  # not the caller's: NotFoundError, as for a job that does not exist
        if run.kind != "distill" or run.status != JobStatus.DONE:
            raise JobStateError(f"Job {job_id} is not a finished distillation: only a finished run's models can be served.")
        taken = s.scalar(
            select(Deployment.id).where(
                Deployment.user_id == run.owner_id, Deployment.name == name, Deployment.stopped_at.is_(None)
            )
        )
        if taken is not None:
            raise NameTakenError(f"You already serve a model named '{name}': stop it first, or choose another name.")
        row = Deployment(
            user_id=run.owner_id,
            job_id=job_id,
            model=model,
            name=name,
            task=task,
            hybrid=hybrid,
            threshold=threshold,
            created_at=utcnow(),
        )
        s.add(row)
        s.flush()
        return _deployment_row(row)


def stop(db: Database, viewer: Viewer, deployment_id: int) -> DeploymentRow:
    with db.session() as s:
        row = s.get(Deployment, deployment_id)
        if row is None or not (viewer.is_admin or row.user_id == viewer.user_id):
            raise NotFoundError(f"You serve no model {deployment_id}: pick one from your list of served models.")
        if row.stopped_at is None:
            row.stopped_at = utcnow()
        return _deployment_row(row)


def served(db: Database, viewer: Viewer | None = None) -> list[DeploymentRow]:
    """Deployments not stopped, oldest first: the caller's own, or (viewer None: the server starting) everyone's."""
    with db.session() as s:
        query = (
            select(Deployment, User.name)
            .join(User, User.id == Deployment.user_id)
            .join(Job, Job.id == Deployment.job_id)
            .where(Deployment.stopped_at.is_(None))
            .order_by(Deployment.id)
        )
        if viewer is not None:
            query = query.where(Deployment.user_id == viewer.user_id)
        return [_deployment_row(row, owner) for row, owner in s.execute(query)]


_SERVED_NAMED = (
    select(Deployment.__table__, User.name.label("owner"))
    .join(User, User.id == Deployment.user_id)
    .where(Deployment.user_id == bindparam("user_id"), Deployment.name == bindparam("name"), Deployment.stopped_at.is_(None))
)


def find_served(db: Database, viewer: Viewer, name: str) -> DeploymentRow | None:
    """The caller's own served model of that name (another user's of the same name is not found). Read on every API
    call, as key_owner: a stop is seen by the next call."""
    with db.engine.connect() as c:
        found = c.execute(_SERVED_NAMED, {"user_id": viewer.user_id, "name": name}).first()
    return _deployment_row(found, found.owner) if found is not None else None
