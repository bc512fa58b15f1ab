"""How close the time said before Start comes to the time a run takes, on this machine.

    python bench/estimate.py            # about 10 min on a 2-core CPU

A fresh studio home; the bundled support tickets (3,000 rows) and their first 1,500 rows as a second
dataset; the MiniLM teacher's training step measured as the Teacher step measures it. Then two Fastest
runs through the real worker, each after asking the Distill step for its estimate: the first has only the
measured step to go by, the second has the first run. Prints each estimate beside the time taken and
writes bench/results/estimate.json. Every figure is measured in this run. Not part of the test suite.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["SLM_STUDIO_HOME"] = tempfile.mkdtemp(prefix="slm-estimate-")

from storage import records  # noqa: E402
from storage.config import open_storage  # noqa: E402
from studio.jobs import service  # noqa: E402
from studio.logs import quiet_terminal  # noqa: E402
from studio.teacher_cost import machine, measure_cost  # noqa: E402
from studio.ui.context import UIContext  # noqa: E402
from studio.ui.distill_step import preset_values, start_job, time_estimate  # noqa: E402

TEACHER, PRESET = "minilm-l6", "Fastest"


def wait(storage, job_id: int) -> tuple[str, float]:
    while True:
        with storage.db.session() as s:
            job = s.get(records.Job, job_id)
            if job.status in ("done", "failed", "cancelled"):
                return job.status, (job.finished_at - job.started_at).total_seconds()
        time.sleep(5)


def main() -> None:
    quiet_terminal(ROOT / "bench" / "results" / "libraries.log")
    storage = open_storage()
    ctx, me = UIContext(storage), records.local_user(storage.db)
    tickets = ROOT / "studio" / "samples" / "support_tickets.csv"
    rows = list(csv.DictReader(tickets.open(encoding="utf-8")))
    half = Path(os.environ["SLM_STUDIO_HOME"]) / "tickets-1500.csv"
    with half.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows[:1500])
    datasets = {
        "3,000 tickets": service.add_dataset(storage, me, tickets),
        "1,500 tickets": service.add_dataset(storage, me, half),
    }
    cost = measure_cost(TEACHER)
    print(f"teacher step: {cost.seconds_per_step:.2f} s ({machine()})", flush=True)
    values = preset_values("classification", PRESET)
    worker = subprocess.Popen(
        [sys.executable, "-m", "studio", "worker"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    out = {
        "machine": f"{platform.processor() or platform.machine()}; {machine()}",
        "teacher_step_s": cost.seconds_per_step,
        "runs": [],
    }
    try:
        for name, dataset in datasets.items():
            said = time_estimate(ctx, me, TEACHER, dataset, values)
            job_id, _ = start_job(ctx, me, TEACHER, dataset, values)
            status, took = wait(storage, job_id)
            print(f"{name}: said '{said}'; took {took:.0f} s ({status})", flush=True)
            out["runs"].append({"data": name, "said": said, "took_s": round(took, 1), "status": status})
    finally:
        worker.terminate()
        worker.wait(60)
    target = ROOT / "bench" / "results" / "estimate.json"
    target.write_text(json.dumps(out, indent=1) + "\n")
    print(f"written to {target}")


if __name__ == "__main__":
    main()
