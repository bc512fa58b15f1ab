"""Samples per second of distillation in 1 and in 2 processes, through the real worker, on this machine.

    python bench/scale.py                  # about 10 min on a 2-core CPU
    python bench/scale.py --processes 1 2 4 --steps 80

A fresh studio home, the bundled support tickets (3,000 rows), the MiniLM teacher (fine-tuned at a fixed learning
rate, so no search), a 3-layer student, global batch 32: the same training in every run. Each run is a real job
(`processes` set) that a real worker starts under torchrun; the cores are shared fairly (N processes on C cores
get C/N threads each). Samples per second come from the run's own log (metrics.jsonl: each step's time), per stage:
the teacher's fine-tune and the student's KD (validation included, as a user waits for it). The teacher's
logit cache is timed by the job's progress rows. Prints the table, the scaling efficiency (speed-up / processes),
and writes bench/results/scale.json. Every figure is measured in this run. Not part of the test suite.

On a GPU machine run it with --processes 1 <GPUs>: one process per GPU.
"""

from __future__ import annotations

import argparse
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
os.environ["SLM_STUDIO_HOME"] = tempfile.mkdtemp(prefix="slm-scale-")

from storage import records  # noqa: E402
from storage.config import open_storage  # noqa: E402
from studio.jobs import service  # noqa: E402
from studio.jobs.machine import capacity_here  # noqa: E402
from studio.logs import quiet_terminal  # noqa: E402

TEACHER, BATCH = "minilm-l6", 32


def wait(storage, job_id: int) -> str:
    while True:
        with storage.db.session() as s:
            job = s.get(records.Job, job_id)
            if job.status in ("done", "failed", "cancelled", "interrupted"):
                return job.status if job.status == "done" else f"{job.status}: {job.error}"
        time.sleep(3)


def samples_per_s(metrics: Path, stage: str) -> tuple[float, int]:
    """Samples a second over a stage's steps (first to last step logged), and the steps counted."""
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    steps = [(r["step"], r["time"]) for r in rows if r["stage"] == stage and r.get("label", "") == "" and "loss" in r]
    (first, t0), (last, t1) = steps[0], steps[-1]
    return (last - first) * BATCH / (t1 - t0), last - first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=60, help="training steps of each stage")
    args = parser.parse_args()
    quiet_terminal(ROOT / "bench" / "results" / "libraries.log")
    storage = open_storage()
    me = records.local_user(storage.db)
    dataset = service.add_dataset(storage, me, ROOT / "studio" / "samples" / "support_tickets.csv")
    worker = subprocess.Popen(
        [sys.executable, "-m", "studio", "worker"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    capacity = capacity_here()
    out = {"machine": f"{platform.processor() or platform.machine()}; {capacity.words()}", "batch": BATCH, "runs": []}
    settings = {
        "teacher": TEACHER,
        "student_layers": 3,
        "teacher_learning_rate": 5e-5,
        "learning_rate": 1e-4,
        "batch_size": BATCH,
        "max_length": 64,
        "min_steps": args.steps,
        "max_steps": args.steps,
        "patience": 0,
        "trim_vocab": False,
    }
    try:
        for processes in args.processes:
            job_id = service.submit(
                storage,
                me,
                "distill",
                {"dataset_id": dataset, "distill": {**settings, "processes": processes}},
                title=f"scale x{processes}",
            )
            started = time.perf_counter()
            status = wait(storage, job_id)
            took = time.perf_counter() - started
            with storage.db.session() as s:
                folder = storage.store.resolve(s.get(records.Job, job_id).folder)
            row = {"processes": processes, "status": status, "job_s": round(took, 1)}
            if status == "done":
                for stage in ("teacher", "student"):
                    rate, steps = samples_per_s(folder / "metrics.jsonl", stage)
                    row[f"{stage}_samples_per_s"], row[f"{stage}_steps"] = round(rate, 1), steps
            print(json.dumps(row), flush=True)
            out["runs"].append(row)
    finally:
        worker.terminate()
        worker.wait(120)
    one = next((r for r in out["runs"] if r["processes"] == 1 and r["status"] == "done"), None)
    for row in out["runs"]:
        if one and row["status"] == "done":
            for stage in ("teacher", "student"):
                speedup = row[f"{stage}_samples_per_s"] / one[f"{stage}_samples_per_s"]
                row[f"{stage}_speedup"] = round(speedup, 2)
                row[f"{stage}_efficiency"] = round(speedup / row["processes"], 2)
    print(f"\n{'processes':>9} {'teacher samples/s':>18} {'student samples/s':>18} {'speed-up (KD)':>14} {'efficiency':>10}")
    for row in out["runs"]:
        if row["status"] == "done":
            print(
                f"{row['processes']:>9} {row['teacher_samples_per_s']:>18} {row['student_samples_per_s']:>18} "
                f"{row.get('student_speedup', '-'):>14} {row.get('student_efficiency', '-'):>10}"
            )
    target = ROOT / "bench" / "results" / "scale.json"
    target.write_text(json.dumps(out, indent=1) + "\n")
    print(f"written to {target}\n{out['machine']}")


if __name__ == "__main__":
    main()
