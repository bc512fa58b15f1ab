"""The queue: Huey, on the studio's own database server.

    SQLite (the default)  SqliteHuey in a file beside studio.db: nothing to install or start
    PostgreSQL            Huey's SQL storage on the same server (FOR UPDATE SKIP LOCKED), so workers on
                          several machines share one queue

The queue carries only job ids. Everything about a job (config, status, progress) is in the jobs table,
and a worker claims a job there with a conditional UPDATE before running it, so a message delivered
twice (see `requeue_lost`) runs its job once.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from huey import Huey, SqliteHuey
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError

from storage import jobs as job_rows
from storage import records
from storage import workers as worker_rows
from storage.config import Storage
from storage.errors import DatabaseError
from storage.tables import Job, JobStatus
from studio.jobs import launch, sync
from studio.jobs.kinds import machines_of, processes_of
from studio.jobs.process_id import worker_name
from studio.logs import JOB_LOG

QUEUE_NAME = "slm-studio"
PASS_ON_S = 1.0
"""A worker that may not run a job waits this long before handing it back to the queue."""
CANCEL_GRACE_S = 120.0
"""A job asked to stop gets this long to finish its step and checkpoint before its process is killed."""


def make_huey(storage: Storage) -> Huey:
    url = make_url(storage.config.db_url)
    if url.get_backend_name() == "sqlite":
        queue_file = Path(url.database).with_name(Path(url.database).stem + "-queue.db")
        return SqliteHuey(QUEUE_NAME, filename=str(queue_file), strict_fifo=True, results=False)
    if url.get_backend_name() == "postgresql":
        from huey.contrib.sql_huey import SqlHuey

        peewee_url = url.set(drivername="psycopg3").render_as_string(hide_password=False)
        return SqlHuey(QUEUE_NAME, database=peewee_url, results=False)
    raise DatabaseError(
        f"The job queue runs on SQLite or PostgreSQL, not {url.get_backend_name()}. "
        "Set SLM_STUDIO_DB_URL to a sqlite:/// or postgresql+psycopg:// URL."
    )


class JobQueue:
    """Enqueue job ids; in a worker, run them (each in a child process)."""

    def __init__(self, storage: Storage, threads_per_job: int = 0, tags: list[str] | None = None) -> None:
        self.storage = storage
        self.threads_per_job = threads_per_job
        self.tags = tags or []
        """This worker's tags: it runs only jobs that need no other."""
        self.children: dict[int, subprocess.Popen] = {}
        self.stopping = False
        self.huey = make_huey(storage)
        self.run_job = self.huey.task(name="run_job")(self._execute)
        self.join = self.huey.task(name="join_job")(self._join)
        """Ask another worker to take its machine's part of a job that trains on several."""

    def enqueue(self, job_id: int) -> None:
        self.run_job(job_id)

    def pending_ids(self) -> set[int]:
        return {task.args[0] for task in self.huey.pending() if task.args and task.name == "run_job"}

    def requeue_lost(self) -> list[int]:
        """Queued jobs with no message (a worker died between taking the message and claiming the job, or a
        submit died before enqueueing): enqueue them again."""
        waiting = self.pending_ids()
        with self.storage.db.session() as s:
            queued = list(s.scalars(select(Job.id).where(Job.status == JobStatus.QUEUED).order_by(Job.id)))
        lost = [job_id for job_id in queued if job_id not in waiting]
        for job_id in lost:
            self.enqueue(job_id)
        return lost

    # ------------------------------------------------------------------ worker side

    def _execute(self, job_id: int) -> None:
        db, store = self.storage.db, self.storage.store
        with db.session() as s:
            needs = s.scalar(select(Job.needs).where(Job.id == job_id, Job.status == JobStatus.QUEUED))
        if not worker_rows.can_run(self.tags, needs):
            self._pass_on(job_id, needs)
            return
        if not job_rows.claim(db, job_id, worker_name()):
            return  # cancelled while queued, or another worker has it
        with db.session() as s:
            row = s.get(Job, job_id)
            s.expunge(row)
        folder, attempt, processes = store.resolve(row.folder), row.attempt, processes_of(row)
        sync.pull_inputs(self.storage, row)  # it may have run, or its inputs been made, on another machine
        folder.mkdir(parents=True, exist_ok=True)
        machines = self._gather_machines(row)
        with open(folder / JOB_LOG, "ab") as log:
            child = subprocess.Popen(
                launch.command(job_id, processes, machines),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._child_env(),
            )
        job_rows.set_worker(db, job_id, worker_name(child.pid), attempt)
        self.children[job_id] = child
        try:
            self._wait(job_id, child, attempt, row)
        finally:
            self.children.pop(job_id, None)
            sync.push_outputs(self.storage, row)
        try:
            records.record_artifacts(db, job_id, [store.describe(store.relative(folder / JOB_LOG))], "log")
        except IntegrityError:
            return  # the user deleted the finished job in the moment since; nothing is left to record
        # finish() changes only a job still marked running, i.e. one whose process died before closing it.
        if self.stopping or processes > 1 or machines.count > 1:  # several: one died, and the main one could not say so
            job_rows.finish(db, job_id, JobStatus.INTERRUPTED, self._why_stopped(job_id, processes, machines, child), attempt)
        else:
            job_rows.finish(
                db,
                job_id,
                JobStatus.FAILED,
                f"The job's process ended unexpectedly (exit code {child.returncode};"
                f" {_exit_reason(child.returncode)}). Its log is in the job folder; "
                "resume the job to continue from its last checkpoint.",
                attempt,
            )

    def _why_stopped(self, job_id: int, processes: int, machines: launch.Machines, child: subprocess.Popen) -> str:
        if self.stopping:
            return "The worker was stopped before the job reached a safe point. Resume it to continue from its last checkpoint."
        with self.storage.db.session() as s:
            joined = s.scalar(select(Job.machines_joined).where(Job.id == job_id)) or 0
        if machines.count > joined:
            return (
                f"Only {joined} of the {machines.count} machines the job trains on joined it in time. Start a worker on "
                "another machine (sharing the artifact folder, with the job's tags), or set Machines to 1; then resume it."
            )
        return (
            f"A process of the job ({processes} on each of {machines.count} machine(s)) ended unexpectedly (exit code "
            f"{child.returncode}). Its log is in the job folder; resume the job to continue from its last checkpoint."
        )

    def _gather_machines(self, row: Job) -> launch.Machines:
        """A job on several machines: say where they meet, and ask the other workers for the others."""
        count = machines_of(row)
        if count == 1:
            return launch.Machines()
        where = f"{launch.address()}:{launch.free_port()}"
        job_rows.open_rendezvous(self.storage.db, row.id, where, row.attempt)
        for _ in range(count - 1):
            self.join(row.id)
        return launch.Machines(count, 0, where)

    def _join(self, job_id: int) -> None:
        """Take this machine's part of a running job that trains on several (its first machine asked for it)."""
        db = self.storage.db
        with db.session() as s:
            row = s.get(Job, job_id)
            if row is None or row.status != JobStatus.RUNNING:
                return
            s.expunge(row)
        if job_id in self.children or not worker_rows.can_run(self.tags, row.needs):
            time.sleep(PASS_ON_S)  # this worker runs a part already (or may not): another machine's turn
            self.join(job_id)
            return
        taken = job_rows.take_machine(db, job_id, machines_of(row))
        if taken is None:
            return  # it has all its machines (or stopped) meanwhile
        rank, where, attempt = taken
        sync.pull_inputs(self.storage, row)
        folder = self.storage.store.resolve(row.folder)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"job.machine-{rank}.log", "ab") as log:
            child = subprocess.Popen(
                launch.command(job_id, processes_of(row), launch.Machines(machines_of(row), rank, where)),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._child_env(),
            )
        self.children[job_id] = child
        try:
            child.wait()  # the first machine's main process reports, saves and closes the job; this part only trains
        finally:
            self.children.pop(job_id, None)

    def _pass_on(self, job_id: int, needs: list[str]) -> None:
        """A job this worker may not run goes back in the queue for one that may, and says what it waits for."""
        able = [w for w in worker_rows.live(self.storage.db) if worker_rows.can_run(w.tags, needs)]
        wanted = ", ".join(needs)
        job_rows.waiting(
            self.storage.db,
            job_id,
            f"waiting for a worker tagged {wanted}"
            + ("" if able else f" (none is running: start one with 'python -m studio worker --tags {wanted}')"),
        )
        time.sleep(PASS_ON_S)  # not straight back to the queue's head: the worker that may run it gets a turn
        self.enqueue(job_id)

    def stop_children(self, wait_s: float = 60.0) -> None:
        """Worker shutdown: each job saves at its next step and is left interrupted (resumable)."""
        self.stopping = True
        children = list(self.children.values())
        for child in children:
            child.terminate()
        deadline = time.monotonic() + wait_s
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()

    def _wait(self, job_id: int, child: subprocess.Popen, attempt: int, row: Job) -> None:
        asked_at, pushed = None, time.monotonic()
        while child.poll() is None:
            time.sleep(1.0)
            if time.monotonic() - pushed >= sync.PUSH_EVERY_S:  # checkpoints reach the shared store as they come
                sync.push_outputs(self.storage, row)
                pushed = time.monotonic()
            if asked_at is None:
                with self.storage.db.session() as s:
                    if s.scalar(select(Job.cancel_requested).where(Job.id == job_id)):
                        asked_at = time.monotonic()
            elif time.monotonic() - asked_at > CANCEL_GRACE_S:
                child.kill()
                child.wait()
                job_rows.finish(
                    self.storage.db,
                    job_id,
                    JobStatus.CANCELLED,
                    "Stopped by force: the job did not reach a safe point within two minutes.",
                    attempt,
                )

    def _child_env(self) -> dict[str, str]:
        return launch.child_env(self.storage.config, self.threads_per_job)


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by signal {-code}" + (", usually out of memory" if code == -9 else "")
    return "it crashed before it could report an error"
