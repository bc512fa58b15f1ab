"""The worker: `python -m studio worker`. Runs queued jobs, each in a child process, up to N at a time.

On start (and every SWEEP_S after) it marks jobs whose worker died as interrupted, re-enqueues queued
jobs whose message was lost, and removes folders of deleted jobs. Stop it with Ctrl-C or SIGTERM:
jobs under way are asked to stop after their current step and are checkpointed.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading

from huey.consumer import Consumer

from storage import jobs as job_rows
from storage import workers as worker_rows
from storage.config import Storage
from studio.jobs.machine import capacity_here, tags_of
from studio.jobs.process_id import machine, process_alive, worker_name
from studio.jobs.queue import JobQueue

SWEEP_S = 30.0
log = logging.getLogger("studio.worker")


def stale_after_s() -> float:
    """Seconds without a heartbeat before a job on another machine counts as dead (jobs beat every 5 s)."""
    return float(os.environ.get("SLM_STUDIO_STALE_S", 60))


def recover(storage: Storage) -> list[int]:
    """Mark orphaned jobs interrupted (dead pid on this machine, or no heartbeat from any machine)."""
    lost = job_rows.recover_orphans(storage.db, stale_after=stale_after_s(), host=machine(), process_alive=process_alive)
    for job_id in lost:
        log.warning("job %s was running when its worker died: marked interrupted (resume it to continue)", job_id)
    return lost


def tidy(storage: Storage, queue: JobQueue) -> None:
    recover(storage)
    for job_id in queue.requeue_lost():
        log.info("job %s was queued without a queue message: enqueued again", job_id)
    for folder in job_rows.sweep_unreferenced(storage.db, storage.store):
        log.info("removed %s (its job was deleted)", folder)


def serve(storage: Storage, workers: int = 1, tags: list[str] | None = None) -> None:
    """Run until stopped. `workers` jobs run at once; CPU threads are shared out among them. The worker runs only
    jobs whose needs its tags cover (the machine's 'gpu' or 'cpu', and `tags`)."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    capacity = capacity_here()
    mine = tags_of(capacity, tags or [])
    queue = JobQueue(storage, threads_per_job=threads, tags=mine)
    name = worker_name()
    worker_rows.register(storage.db, name, capacity, mine, workers)
    tidy(storage, queue)
    stop = threading.Event()

    def sweep() -> None:
        while not stop.wait(SWEEP_S):
            try:
                worker_rows.seen(storage.db, name)
                tidy(storage, queue)
            except Exception:  # noqa: BLE001 - the next sweep tries again; the worker keeps running
                log.exception("sweep failed")

    threading.Thread(target=sweep, name="sweeper", daemon=True).start()
    log.info(
        "worker %s:%s serving %s with %d job slot(s), %d CPU thread(s) each; %s; tags %s",
        socket.gethostname(),
        os.getpid(),
        storage.db.engine.url.render_as_string(hide_password=True),
        workers,
        threads,
        capacity.words(),
        ", ".join(mine),
    )
    consumer = JobConsumer(
        queue,
        workers=workers,
        worker_type="thread",
        periodic=False,
        initial_delay=0.2,
        max_delay=2.0,
        check_worker_health=True,
        shutdown_timeout=90,
    )
    try:
        consumer.run()
    finally:
        stop.set()
        worker_rows.unregister(storage.db, name)


class JobConsumer(Consumer):
    """Huey's consumer, except that stopping first asks running jobs to save and stop (they end
    interrupted, resumable) instead of waiting hours for them to finish."""

    def __init__(self, queue: JobQueue, **options) -> None:
        self.queue = queue
        super().__init__(queue.huey, **options)
        # Huey restarts itself on SIGHUP by re-running sys.argv, which breaks under 'python -m studio';
        # a closed terminal stops the worker the same way as Ctrl-C instead.
        if hasattr(signal, "SIGHUP"):
            self._signal_actions[signal.SIGHUP] = (False, True)

    def stop(self, graceful: bool = False) -> None:
        self.queue.stop_children()
        super().stop(graceful)
