"""Is the studio still quick while a job trains? Page and history load times on this machine.

    python bench/ui.py             # MiniLM teacher distilled on the sample tickets in the worker meanwhile

A worker distills the bundled MiniLM teacher on the 3,000 sample tickets (it uses every core), with
1,000 older jobs in the history. Meanwhile the page (GET /) and the History tab's refresh (through
Gradio's own API, as the browser calls it: jobs table + the open job's detail and loss curve) are each
timed 100 times. Every figure printed is measured in this run. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--port", type=int, default=7877)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="slm-bench-ui-"))
    os.environ["SLM_STUDIO_HOME"] = str(home)

    from gradio_client import Client

    from storage import jobs as job_rows
    from storage.config import open_storage
    from storage.records import local_user
    from studio.hosting import HostSettings
    from studio.jobs import service
    from studio.ui.server import create_server, start_in_thread

    storage = open_storage()
    me = local_user(storage.db)
    dataset = service.add_dataset(storage, me, ROOT / "studio" / "samples" / "support_tickets.csv")
    for i in range(1000):  # a history with some depth
        old = job_rows.submit(storage.db, me.user_id, "distill", {}, title=f"older job {i}")
        job_rows.claim(storage.db, old.id, "bench:1")
        job_rows.report(
            storage.db,
            old.id,
            1.0,
            "done",
            [{"stage": "student", "name": "loss", "step": s, "value": 1 / s} for s in range(1, 101)],
        )
        job_rows.finish(storage.db, old.id, "done")
    training = service.submit(
        storage,
        me,
        "distill",
        {"dataset_id": dataset, "distill": {"teacher": "minilm-l6", "student_layers": 2, "epochs": 2, "teacher_epochs": 1}},
        title="training now",
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "studio", "worker"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    running = start_in_thread(*create_server(storage, HostSettings()), port=args.port)  # what `studio ui` serves
    url = running.url
    try:
        while True:  # wait until it really trains
            with storage.db.session() as s:
                job = job_rows.get(s, me, training)
                trains = bool(job_rows.last_values(s, [training], "loss"))
            if job.status == "running" and trains:
                break
            if job.status not in ("queued", "running"):
                sys.exit(f"the training job ended early: {job.status} {job.error}")
            time.sleep(1)
        client = Client(url, verbose=False)
        endpoint = "/history"
        page, history = [], []
        for _ in range(args.repeats):
            started = time.perf_counter()
            body = urllib.request.urlopen(url, timeout=30).read()
            page.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            result = client.predict(training, api_name=endpoint)
            history.append((time.perf_counter() - started) * 1000)
        with storage.db.session() as s:
            job = job_rows.get(s, me, training)
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} CPU cores; page {len(body):,} bytes; "
            f"history rows {len(result[0]['data']) if isinstance(result[0], dict) else '?'}"
        )
        print(f"while job {training} trained ({job.status}, {job.step}):")
        for name, samples in [("page (GET /)", page), ("history refresh (jobs table + job detail + loss curve)", history)]:
            median, p95 = percentiles(samples)
            print(f"  {name:55} median {median:7.1f} ms   p95 {p95:7.1f} ms")
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=120)
        running.stop()


if __name__ == "__main__":
    main()
