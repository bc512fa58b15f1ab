"""Runs one job to its end: the code a worker's child process executes (`python -m studio.jobs.runner ID`),
and what the CLI runs in its own process for a job in the foreground. Either way the job's row ends
done, failed or cancelled, and the traceback of an unexpected error goes to the job's log, not the user.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable

from sqlalchemy import select

from storage import jobs as job_rows
from storage.config import Storage, open_storage
from storage.errors import JobLostError, StorageError
from storage.tables import Job, JobStatus
from studio import ranks
from studio.errors import StopRequested, StudioError
from studio.jobs import launch, sync
from studio.jobs.kinds import CHECKPOINT_EVERY_S, KINDS, JobContext, processes_of
from studio.jobs.process_id import die_with_parent, worker_name
from studio.jobs.reporter import HelperReporter, JobReporter
from studio.logs import JOB_LOG, job_log, quiet_libraries
from studio.progress import Progress

HEARTBEAT_S = 5.0
log = logging.getLogger("studio.jobs")


def run_claimed(
    storage: Storage,
    job_id: int,
    *,
    checkpoint_every_s: float = CHECKPOINT_EVERY_S,
    cancel: threading.Event | None = None,
    shutdown: threading.Event | None = None,
    echo: Callable | None = None,
) -> str:
    """Run a job already marked running by this process's claim; returns the status it ends with.

    Setting `cancel` (or a cancel request in the database) stops it after the step under way."""
    with storage.db.session() as s:
        job = s.get(Job, job_id)
        s.expunge(job)
    folder = storage.store.resolve(job.folder)
    folder.mkdir(parents=True, exist_ok=True)
    reporter = JobReporter(storage.db, job_id, echo=echo)
    reporter.attempt = job.attempt
    reporter.cancel = cancel or reporter.cancel
    reporter.keep_alive(HEARTBEAT_S)
    ctx = JobContext(storage, job, folder, reporter, checkpoint_every_s)
    try:
        with job_log(folder / JOB_LOG):
            KINDS[job.kind].run(ctx)
        status, error = JobStatus.DONE, None
    except JobLostError:
        log.warning("job %s was taken from this process; stopping without writing more", job_id)
        return "lost"
    except KeyboardInterrupt:  # a second Ctrl-C in the foreground: no checkpoint, but never left running
        reporter.finished.set()
        job_rows.finish(
            storage.db,
            job_id,
            JobStatus.INTERRUPTED,
            "Stopped at once (Ctrl-C). Resume it to continue from its last checkpoint.",
            attempt=job.attempt,
        )
        raise
    except StopRequested:
        if shutdown is not None and shutdown.is_set():
            status, error = JobStatus.INTERRUPTED, "The worker was shut down; the job was saved at its last step. Resume it."
        else:
            status, error = JobStatus.CANCELLED, None
    except (StudioError, StorageError) as err:
        status, error = JobStatus.FAILED, str(err)
    except Exception as err:  # noqa: BLE001 - anything else is still the job's failure, never the worker's
        with open(folder / JOB_LOG, "a", encoding="utf-8") as out:  # the log the message points at, in the CLI too
            traceback.print_exc(file=out)
        if ranks.peer_lost(err):
            status, error = (
                JobStatus.INTERRUPTED,
                f"One of the job's {ranks.world()} processes stopped (its log is in {job.folder}/{JOB_LOG}); "
                "the job was saved at its last checkpoint. Resume it to continue.",
            )
            job_rows.finish(storage.db, job_id, status, error, attempt=job.attempt)
            return status
        status, error = (
            JobStatus.FAILED,
            (
                f"Unexpected error: {type(err).__name__}: {err}. The full report is in the job's "
                f"log ({job.folder}/{JOB_LOG}); resume the job to try again from its last checkpoint."
            ),
        )
    finally:
        reporter.finished.set()
    try:  # what it made reaches the shared store before the job says it is done (another machine may go on)
        sync.push_outputs(storage, job)
    except Exception as err:  # noqa: BLE001 - the work is safe on this disk; the job says what went wrong
        status, error = (
            JobStatus.INTERRUPTED,
            f"The job's files could not be sent to the object store ({type(err).__name__}: {err}). They are kept "
            "on the machine that ran it; resume the job once the object store answers.",
        )
    job_rows.finish(storage.db, job_id, status, error, attempt=job.attempt)
    log.info("job %s %s", job_id, status)
    return status


def run_here(storage: Storage, job_id: int, echo: Callable | None = None) -> str:
    """Claim and run a queued job in this process (the CLI's foreground run). Ctrl-C once stops after the
    step under way (checkpointed, status cancelled, resumable); a second Ctrl-C stops at once."""
    if not job_rows.claim(storage.db, job_id, worker_name()):
        raise StorageError(f"Job {job_id} was already taken by a worker or cancelled.")
    with storage.db.session() as s:
        job = s.get(Job, job_id)
        s.expunge(job)
    sync.pull_inputs(storage, job)  # run_claimed (and the main process of several) push what the job made
    return _run_here(storage, job_id, processes_of(job), echo)


def _run_here(storage: Storage, job_id: int, processes: int, echo: Callable | None) -> str:
    if processes > 1:
        return _run_processes_here(storage, job_id, processes, echo)
    previous = signal.getsignal(signal.SIGINT)
    cancel = threading.Event()

    def stop_after_step(_sig, _frame) -> None:
        print("\nStopping after this step (Ctrl-C again to stop at once)...", file=sys.stderr)
        cancel.set()
        signal.signal(signal.SIGINT, previous)

    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        signal.signal(signal.SIGINT, stop_after_step)
    try:
        return run_claimed(storage, job_id, cancel=cancel, echo=echo)
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)


def _run_processes_here(storage: Storage, job_id: int, processes: int, echo: Callable | None) -> str:
    """The CLI's foreground run of a job of several processes: they run under torchrun (studio.jobs.launch), as
    under a worker; this process shows what the job's row says, and Ctrl-C asks them to stop after the step."""
    with storage.db.session() as s:
        job = s.get(Job, job_id)
        folder, attempt = storage.store.resolve(job.folder), job.attempt
    folder.mkdir(parents=True, exist_ok=True)
    env = launch.child_env(storage.config)
    with open(folder / JOB_LOG, "ab") as out:
        child = subprocess.Popen(launch.command(job_id, processes), stdout=out, stderr=subprocess.STDOUT, env=env)
    said = ""
    while child.poll() is None:
        try:
            time.sleep(1.0)
        except KeyboardInterrupt:
            job_rows.ask_to_stop(storage.db, job_id)
            print("\nStopping after this step...", file=sys.stderr)
            continue
        with storage.db.session() as s:
            step = s.scalar(select(Job.step).where(Job.id == job_id)) or ""
        if echo is not None and step != said:
            echo(Progress("job", 1, 1, 0, 1, message=f"{step} ({processes} processes)"))
            said = step
    if job_rows.finish(
        storage.db,
        job_id,
        JobStatus.INTERRUPTED,
        f"A process of the job's {processes} ended unexpectedly (exit code {child.returncode}). Its log is in "
        f"{folder / JOB_LOG}; resume the job to continue from its last checkpoint.",
        attempt=attempt,
    ):
        return JobStatus.INTERRUPTED
    with storage.db.session() as s:
        return s.scalar(select(Job.status).where(Job.id == job_id))


def run_helper(storage: Storage, job_id: int, cancel: threading.Event, checkpoint_every_s: float) -> int:
    """A process of a job of several that is not the main one: it trains and computes its share, and leaves the
    reporting, the files and the job's row to the main process. An error ends this process (torchrun then stops
    the others, and the main process marks the job interrupted)."""
    with storage.db.session() as s:
        job = s.get(Job, job_id)
        s.expunge(job)
    me = f"process {ranks.rank() + 1} of {ranks.world()}"
    log.info("job %s: %s started on %s", job_id, me, worker_name())
    reporter = HelperReporter(storage.db, job_id)
    reporter.cancel = cancel
    ctx = JobContext(storage, job, storage.store.resolve(job.folder), reporter, checkpoint_every_s)
    try:
        KINDS[job.kind].run(ctx)
    except StopRequested:
        pass  # stopped together with the main process, which saved and says so
    log.info("job %s: %s done", job_id, me)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    quiet_libraries()  # until the job starts and its own log takes them
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    die_with_parent()
    storage = open_storage()
    job_id = int(argv[0])
    ranks.join()  # a job of several processes: they meet here (one process: nothing to do)
    if ranks.is_main():
        job_rows.set_worker(storage.db, job_id, worker_name(), attempt=job_rows.current_attempt(storage.db, job_id))
    cancel, shutdown = threading.Event(), threading.Event()

    def on_term(_sig, _frame) -> None:  # the worker is stopping: save at the next step, stay resumable
        shutdown.set()
        cancel.set()

    signal.signal(signal.SIGTERM, on_term)
    # Ctrl-C or a closed terminal reaches the whole process group; the worker then sends us SIGTERM.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    every = float(os.environ.get("SLM_STUDIO_CHECKPOINT_S", CHECKPOINT_EVERY_S))
    if not ranks.is_main():
        return run_helper(storage, job_id, cancel, every)
    status = run_claimed(storage, job_id, checkpoint_every_s=every, cancel=cancel, shutdown=shutdown)
    return 0 if status in (JobStatus.DONE, JobStatus.CANCELLED, JobStatus.INTERRUPTED) else 1


if __name__ == "__main__":
    sys.exit(main())
