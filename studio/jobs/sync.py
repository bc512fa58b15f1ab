"""What a job reads and writes in the artifact store, so that a worker on another machine has it (storage/objects.py).

    pull_inputs    before a job starts: its dataset, its own folder (a resumed job may have run elsewhere), the run
                   it works on (with that run's dataset), a model folder of another run it starts from, and the
                   user's book of teacher answers
    push_outputs   while it runs (every PUSH_EVERY_S, from the worker: at most that much work lives on one disk
                   only) and when it ends: its folder, the run it wrote variants into, the answers book

With no object store (one machine) both do nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path

from storage.config import Storage
from storage.tables import Dataset, Job

PUSH_EVERY_S = 60.0
log = logging.getLogger("studio.sync")


def answers_book(owner_id: int) -> str:
    """A user's book of teacher answers (studio.asked_teacher), kept across jobs."""
    return f"teacher-answers/user-{owner_id}.sqlite"


def _folders_read(storage: Storage, job: Job) -> list[str]:
    with storage.db.session() as s:
        parent = s.get(Job, job.parent_id) if job.parent_id else None
        datasets = [s.get(Dataset, d) for d in (job.dataset_id, parent.dataset_id if parent else None) if d]
        folders = [job.folder, *(d.path for d in datasets if d), *([parent.folder] if parent else [])]
    settings = (job.config or {}).get("distill") or {}
    for spec in (settings.get("teacher"), settings.get("student")):
        inside = _job_folder_of(storage, spec)
        if inside:
            folders.append(inside)
    return folders


def _job_folder_of(storage: Storage, spec: str | None) -> str | None:
    """'jobs/7' for a model folder inside job 7's folder (a run's student as the next run's teacher)."""
    if not spec or "/" not in spec:
        return None
    path = Path(spec)
    root = storage.store.root
    if path.is_absolute() and path.is_relative_to(root):
        parts = path.relative_to(root).parts
        if len(parts) >= 2 and parts[0] == "jobs" and parts[1].isdigit():
            return f"jobs/{parts[1]}"
    return None


def pull_inputs(storage: Storage, job: Job) -> None:
    if storage.store.remote is None:
        return
    for folder in [*_folders_read(storage, job), answers_book(job.owner_id)]:
        came = storage.store.pull(folder)
        if came:
            log.info("job %s: %d file(s) of %s fetched from the object store", job.id, came, folder)


def push_outputs(storage: Storage, job: Job) -> None:
    if storage.store.remote is None:
        return
    folders = [job.folder]
    if job.parent_id:  # compress and evaluate write into the run they work on (variants/, compare.json)
        with storage.db.session() as s:
            parent = s.get(Job, job.parent_id)
            folders.append(parent.folder if parent else "")
    if storage.store.resolve(answers_book(job.owner_id)).exists():
        folders.append(answers_book(job.owner_id))
    for folder in filter(None, folders):
        sent = storage.store.push(folder)
        if sent:
            log.info("job %s: %d file(s) of %s sent to the object store", job.id, sent, folder)
