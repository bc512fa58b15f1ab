"""The workers taking jobs from the queue, on one machine or several: what each offers, and which jobs it may run.

A worker has tags: the kind of machine it is on ("gpu" or "cpu", found by itself) and any its owner gives it
(`--tags fast,eu`). A job may need tags (submitted with `needs`); only a worker with every one of them runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update

from storage.db import Database
from storage.jobs import as_utc
from storage.tables import Worker, utcnow

LIVE_S = 120.0
"""A worker not seen for this long (it writes its row every 30 s) is shown as gone."""


@dataclass(frozen=True)
class Capacity:
    """What a machine offers a worker."""

    host: str
    cores: int
    memory_bytes: int
    gpus: int
    gpu_names: str = ""

    def words(self) -> str:
        """'2 cores, 24 GB, no GPU' / '16 cores, 128 GB, 2 GPUs (NVIDIA H100)'."""
        gpus = "no GPU" if not self.gpus else f"{self.gpus} GPU{'s' if self.gpus > 1 else ''}"
        named = f" ({self.gpu_names})" if self.gpus and self.gpu_names else ""
        return f"{self.cores} cores, {self.memory_bytes / 2**30:.0f} GB, {gpus}{named}"


def can_run(tags: list[str] | set[str], needs: list[str] | None) -> bool:
    return set(needs or []) <= set(tags)


def register(db: Database, name: str, capacity: Capacity, tags: list[str], slots: int) -> None:
    with db.session() as s:
        s.execute(delete(Worker).where(Worker.name == name))
        s.add(
            Worker(
                name=name,
                host=capacity.host,
                cores=capacity.cores,
                memory_bytes=capacity.memory_bytes,
                gpus=capacity.gpus,
                gpu_names=capacity.gpu_names[:500],
                tags=sorted(set(tags)),
                slots=slots,
            )
        )


def seen(db: Database, name: str) -> None:
    with db.session() as s:
        s.execute(update(Worker).where(Worker.name == name).values(seen_at=utcnow()))


def unregister(db: Database, name: str) -> None:
    with db.session() as s:
        s.execute(delete(Worker).where(Worker.name == name))


def live(db: Database, within_s: float = LIVE_S) -> list[Worker]:
    """Workers seen lately, oldest first. (Compared here, not in SQL: SQLite keeps times without their zone.)"""
    cutoff = utcnow() - timedelta(seconds=within_s)
    with db.session() as s:
        rows = list(s.scalars(select(Worker).order_by(Worker.started_at, Worker.id)))
        s.expunge_all()
    return [row for row in rows if as_utc(row.seen_at) >= cutoff]
