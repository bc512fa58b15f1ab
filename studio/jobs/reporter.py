"""The running job's voice: progress, step metrics and heartbeats into the database, cancel back out.

Pipeline code only calls `on_progress(Progress)`; this turns that into rows, so the pipeline never
imports storage and the UI only ever reads rows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from storage import jobs as job_rows
from storage.db import Database
from storage.errors import JobLostError
from studio import ranks
from studio.errors import StopRequested
from studio.progress import Progress  # no torch: the worker's main process never loads it

WRITE_EVERY_S = 0.5
"""Progress without new metrics is written at most this often; metric rows are written as they come."""


PHASES = {
    "teacher": "the teacher learns your data",
    "cache": "the teacher reads your texts once",
    "probe": "trying student sizes",
    "student": "the student learns from the teacher",
    "labels-only student": "the same student learns your labels alone (for comparison)",
    "heal": "the pruned model relearns what it lost",
}
"""Training stages as a user reads them (the stage names are the logs' and the charts')."""


def phase_words(p: Progress) -> str:
    """'the student learns from the teacher: step 40 of 150' (with the variant or trial it belongs to)."""
    words = PHASES.get(p.stage, p.stage)
    about = f" ({p.label})" if p.label else ""
    return f"{words}{about}: step {p.step + (p.epoch - 1) * p.steps} of {p.epochs * p.steps}"


class JobReporter:
    """Maps pipeline stages onto one 0..1 progress bar and writes what happens as it happens."""

    def __init__(
        self,
        db: Database,
        job_id: int,
        spans: dict[str, tuple[float, float]] | None = None,
        echo: Callable[[Progress], None] | None = None,
    ) -> None:
        self.db = db
        self.echo = echo
        """Also shown here (the CLI's progress bars)."""
        self.job_id = job_id
        self.spans = dict(spans or {})
        self.span = self.part_span = (0.0, 1.0)
        self.attempt: int | None = None
        """Which attempt of the job this process runs; its writes match only that attempt."""
        self.lost = False
        self.cancel = threading.Event()
        self.finished = threading.Event()
        self._last_write = 0.0
        self._last_fraction = 0.0

    # ---------------------------------------------------------------- called by the job's code

    @contextmanager
    def part(self, lo: float, hi: float, step: str) -> Iterator[None]:
        """A slice of the whole job's progress bar, e.g. (0.9, 1.0) for 'evaluating'."""
        self.span = self.part_span = (lo, hi)
        self.say(step, lo)
        yield
        self.span = self.part_span = (0.0, 1.0)

    def say(self, step: str, fraction: float | None = None) -> None:
        """What the job is doing now, written at once."""
        fraction = self._last_fraction if fraction is None else fraction
        self._write(fraction, step, [])

    def __call__(self, p: Progress) -> None:
        """The pipeline's progress callback."""
        if self.echo is not None:
            self.echo(p)
        if p.stage == "variant":  # one of several variants: each its own slice of the current part
            lo, hi = self.part_span
            width = (hi - lo) / max(1, p.items)
            self.span = (lo + width * (p.item - 1), lo + width * p.item)
        if p.restart_step is not None:
            job_rows.forget_metrics_after(self.db, self.job_id, p.stage, p.restart_step, label=p.label)
        lo, hi = self.spans.get(p.stage, self.span)
        if p.items:  # an item started: the variant's slice starts empty, export step 3 of 6 is a third done
            done = 0.0 if p.stage == "variant" else (p.item - 1) / p.items
        else:
            done = ((p.epoch - 1) * p.steps + p.step) / max(1, p.epochs * p.steps)
        fraction = lo + (hi - lo) * min(1.0, done)
        metrics = []
        row = {"stage": p.stage, "label": p.label, "step": p.global_step, "epoch": p.epoch}
        if p.loss is not None and p.global_step is not None and p.restart_step is None:
            metrics.append({**row, "name": "loss", "value": p.loss})
            if p.lr is not None:
                metrics.append({**row, "name": "lr", "value": p.lr})
        if p.validation is not None and p.global_step is not None:
            metrics.append({**row, "name": "validation", "value": p.validation})
        step = p.message or phase_words(p)
        if metrics or p.message or time.monotonic() - self._last_write >= WRITE_EVERY_S:
            self._write(fraction, step, metrics)
        if self.lost:
            raise JobLostError(self.job_id)
        if self.cancel.is_set():
            raise StopRequested()

    # ---------------------------------------------------------------- plumbing

    def _write(self, fraction: float, step: str, metrics: list[dict]) -> None:
        self._last_fraction = fraction
        self._last_write = time.monotonic()
        if ranks.world() > 1:  # the page says the job trains in several processes
            step = f"{step} · {ranks.world()} processes"
        if job_rows.report(self.db, self.job_id, fraction, step, metrics, attempt=self.attempt):
            self.cancel.set()

    def keep_alive(self, every_s: float) -> threading.Thread:
        """A daemon thread that heartbeats while the job runs (also through long silent phases such as loading
        a model) and notices a cancel request between progress reports."""

        def beat() -> None:
            while not self.finished.wait(every_s):
                try:
                    if job_rows.heartbeat(self.db, self.job_id, self.attempt):
                        self.cancel.set()
                except JobLostError:
                    self.lost = True  # the next progress report raises it in the job's own thread
                    self.cancel.set()
                    return
                except Exception:  # noqa: BLE001 - a missed beat is retried; the job must not die of it
                    continue

        thread = threading.Thread(target=beat, name=f"heartbeat-{self.job_id}", daemon=True)
        thread.start()
        return thread


class HelperReporter(JobReporter):
    """The reporter of a job's process that is not the main one: it writes nothing (the main process reports for
    every process) and only says when this process was asked to stop (the worker stopping it: SIGTERM)."""

    def __call__(self, p: Progress) -> None:
        if self.cancel.is_set():
            raise StopRequested()

    def _write(self, fraction: float, step: str, metrics: list[dict]) -> None:
        return None
