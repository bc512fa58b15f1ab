"""How the job history holds up: 1,000 queued jobs and 100,000 metric rows, on SQLite and PostgreSQL.

    python bench/jobs.py                 # both databases (PostgreSQL needs Debian's postgresql package)
    python bench/jobs.py --db sqlite

Jobs go in through the real path (checked config, job row, Huey queue message); each is then claimed
and finished the way a worker does, writing 100 training-step loss rows through the reporter's call
(100,000 rows in all). Then the history page the UI shows (newest 50 jobs with each
one's latest loss), a filtered page, the total count and one job's loss curve are timed, first on a
quiet database and again while a writer process adds metric rows the way a training job does.
Every figure printed is measured in this run. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from sqlalchemy import func, select  # noqa: E402

from storage import jobs as job_rows  # noqa: E402
from storage import records  # noqa: E402
from storage.config import StorageConfig, open_storage  # noqa: E402
from storage.tables import Metric  # noqa: E402
from studio.jobs import service  # noqa: E402
from studio.jobs.queue import JobQueue  # noqa: E402

JOBS, STEPS = 1000, 100
WRITER = """
import sys, time
from storage.db import Database
from storage import jobs as job_rows
db = Database(sys.argv[1]); job_id = int(sys.argv[2]); step = 0
end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    step += 1
    job_rows.report(db, job_id, 0.5, f"student step {step}", [
        {"stage": "student", "name": "loss", "step": step, "value": 1.0 / step},
        {"stage": "student", "name": "lr", "step": step, "value": 1e-4}])
    time.sleep(0.02)
print(step)
"""


def fill(url: str, data_dir: Path) -> tuple:
    storage = open_storage(StorageConfig(url, data_dir))
    me = records.local_user(storage.db)
    dataset = records.add_dataset(
        storage.db,
        me.user_id,
        name="tickets.csv",
        sha256="0" * 64,
        rows=3000,
        columns=["text", "category"],
        task="classification",
        report={},
        path="datasets/x",
    )
    started = time.perf_counter()
    ids = [
        service.submit(storage, me, "distill", {"dataset_id": dataset, "distill": {"epochs": 1 + i % 5}}, title=f"bench job {i}")
        for i in range(JOBS)
    ]
    submit_s = time.perf_counter() - started
    started = time.perf_counter()
    for job_id in ids:
        job_rows.claim(storage.db, job_id, "bench:1")
        for first in range(1, STEPS + 1, 25):  # a job writes as it trains; 25 steps a call keeps the fill short
            job_rows.report(
                storage.db,
                job_id,
                first / STEPS,
                "student",
                [
                    {"stage": "student", "name": "loss", "step": step, "epoch": 1, "value": 3.0 / step}
                    for step in range(first, first + 25)
                ],
            )
        job_rows.finish(storage.db, job_id, "done")
    fill_s = time.perf_counter() - started
    return storage, me, ids, submit_s, fill_s


def timed(fn, repeats: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))]


def measure(storage, me, ids, repeats: int) -> dict[str, tuple[float, float]]:
    def page():
        with storage.db.session() as s:
            rows = job_rows.list_jobs(s, me, limit=50)
            assert len(rows) == 50

    def filtered():
        with storage.db.session() as s:
            job_rows.list_jobs(s, me, limit=50, status="done", offset=400)

    def count():
        with storage.db.session() as s:
            assert job_rows.count_jobs(s, me) >= JOBS

    def curve():
        with storage.db.session() as s:
            assert len(records.training_curve(s, me, ids[JOBS // 2])) == STEPS

    return {
        name: timed(fn, repeats)
        for name, fn in [
            ("history page (50 newest + latest loss)", page),
            ("filtered page (done, offset 400)", filtered),
            ("count of jobs", count),
            ("one job's loss curve (100 points)", curve),
        ]
    }


def run(kind: str, url: str, data_dir: Path, repeats: int) -> None:
    storage, me, ids, submit_s, fill_s = fill(url, data_dir)
    with storage.db.session() as s:
        metrics = s.scalar(select(func.count(Metric.id)))
    queued = len(JobQueue(storage).pending_ids())
    print(f"\n== {kind}: {JOBS} jobs ({queued} messages in the queue), {metrics:,} metric rows")
    print(
        f"submit (check + row + queue message): {submit_s / JOBS * 1000:.2f} ms per job; "
        f"fill (claim, 4 reports, finish): {fill_s / JOBS * 1000:.2f} ms per job"
    )
    quiet = measure(storage, me, ids, repeats)
    live_job = service.submit(storage, me, "distill", {"dataset_id": 1, "distill": {}}, title="training now")
    job_rows.claim(storage.db, live_job, "bench:2")
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, url, str(live_job), "600"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)
    busy = measure(storage, me, ids, repeats)
    writer.terminate()
    writer.wait()
    with storage.db.session() as s:
        written = s.scalar(select(func.count(Metric.id)).where(Metric.job_id == live_job))
    print(f"(a writer process added {written} metric rows meanwhile, one commit per training step)")
    print(f"{'query':40} {'quiet median':>13} {'quiet p95':>10} {'writing median':>15} {'writing p95':>12}  (ms)")
    for name in quiet:
        print(f"{name:40} {quiet[name][0]:13.2f} {quiet[name][1]:10.2f} {busy[name][0]:15.2f} {busy[name][1]:12.2f}")
    storage.db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.db in ("sqlite", "both"):
            run("SQLite", f"sqlite:///{tmp}/studio.db", Path(tmp) / "artifacts-sqlite", args.repeats)
        if args.db in ("postgresql", "both"):
            from postgres_server import PostgresServer, server_bin

            if server_bin() is None:
                sys.exit("PostgreSQL server binaries not found: apt-get install postgresql")
            server = PostgresServer()
            server.start()
            try:
                run("PostgreSQL", server.new_database(), Path(tmp) / "artifacts-pg", args.repeats)
            finally:
                server.stop()


if __name__ == "__main__":
    main()
