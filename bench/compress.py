"""Measure compression on the real MiniLM teacher and the bundled support tickets, offline, on CPU.

    python bench/compress.py                       # distill, then make and measure every variant
    python bench/compress.py --run RUN_FOLDER      # reuse a finished distillation run

One table: teacher, student and each compressed variant, all measured by the same code in one
run (quality on the test split, agreement with the teacher, parameters, bytes on disk, peak memory
to load, CPU latency at batch 1 and throughput at batch 32). Then the targets:
  - an int8 variant <= 0.30 x the student's fp32 size with <= 1 point accuracy drop;
  - a structured-pruned + healed variant >= 1.5 x the student's throughput with <= 2 points drop.
Every figure printed is measured in this run. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from bench.distill import TICKETS, machine  # noqa: E402
from studio.cli.tables import format_table  # noqa: E402
from studio.compress.pipeline import compress_many, parse_recipe  # noqa: E402
from studio.dataset import prepare_dataset  # noqa: E402
from studio.distill import distill  # noqa: E402
from studio.distill_config import DistillConfig  # noqa: E402
from studio.evaluate import evaluate_all  # noqa: E402
from studio.logs import quiet_terminal  # noqa: E402

SAMPLES = ROOT / "studio" / "samples"
STRUCTURED = "pruned-heads-neurons-healed"
VARIANTS = [
    ("int8", "int8"),
    ("onnx-fp32", "onnx"),
    ("bnb-int8", "bnb-int8"),
    ("bnb-nf4", "bnb-nf4"),
    ("bnb-fp4", "bnb-fp4"),
    ("magnitude-50", "magnitude:sparsity=0.5"),
    ("magnitude-50-healed", "magnitude:sparsity=0.5+heal:epochs=1"),
    (STRUCTURED, "prune-heads:fraction=0.5+prune-neurons:fraction=0.5+heal:epochs=3"),
    ("pruned-layer-healed", "prune-layers:count=1+heal:epochs=2"),
]
COMPOSED = [("pruned-healed-int8", "int8")]
"""Made from the structured variant above: distilled student -> prune -> heal -> int8."""


def distill_run(work: Path, student_layers: int) -> Path:
    dataset = prepare_dataset(SAMPLES / "support_tickets.csv", work / "tickets")
    config = DistillConfig(**TICKETS, student_layers=student_layers)
    distill(config, dataset, work / "run")
    return work / "run"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a finished distillation run to reuse")
    parser.add_argument("--student-layers", type=int, default=3, help="student layers (of 6) when distilling here")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    quiet_terminal(ROOT / "bench" / "results" / "libraries.log")
    work = args.work or Path(tempfile.mkdtemp(prefix="slm-bench-compress-"))
    print(f"machine: {machine()}; work in {work}")
    started = time.perf_counter()
    run = args.run or distill_run(work, args.student_layers)
    print(f"distilled in {time.perf_counter() - started:.0f} s: {run}")

    def missing(variants):  # a reused run keeps the variants it already has
        return [(name, parse_recipe(text)) for name, text in variants if not (run / "variants" / name).exists()]

    made = compress_many(run, missing(VARIANTS)) if missing(VARIANTS) else []
    made += compress_many(run, missing(COMPOSED), source=STRUCTURED) if missing(COMPOSED) else []
    for manifest in made:
        print(f"  {manifest.name:28} {manifest.status:12} {manifest.seconds or '-'} s  {manifest.reason}")

    report = evaluate_all(run)
    rows = {m["name"]: m for m in report["models"]}
    print(f"\n== Compression of a {args.student_layers}-layer MiniLM student, {report['test_examples']} test tickets")
    print(format_table(report["models"]))
    print("\nload MB = peak memory a fresh process adds to load the model and answer one request")
    for m in report["models"]:
        print(f"  {m['name']:28} form {m.get('form', '-'):6} load {m.get('peak_load_mb')} MB  {m.get('note', '')}")

    student = rows["student"]
    checks = []
    int8 = rows["int8"]
    checks.append(("int8 size / student fp32 size", int8["size_bytes"] / student["size_bytes"], "<= 0.30"))
    checks.append(("int8 accuracy drop (points)", 100 * (student["accuracy"] - int8["accuracy"]), "<= 1"))
    checks.append(("int8 latency batch 1, student / int8", student["latency_ms"] / int8["latency_ms"], "-"))
    checks.append(("int8 throughput batch 32, int8 / student", int8["throughput"] / student["throughput"], "-"))
    pruned = rows[STRUCTURED]
    checks.append(("structured+healed throughput / student", pruned["throughput"] / student["throughput"], ">= 1.5"))
    checks.append(("structured+healed latency, student / it", student["latency_ms"] / pruned["latency_ms"], "-"))
    checks.append(("structured+healed accuracy drop (points)", 100 * (student["accuracy"] - pruned["accuracy"]), "<= 2"))
    composed = rows["pruned-healed-int8"]
    checks.append(("pruned+healed+int8 size / student", composed["size_bytes"] / student["size_bytes"], "-"))
    checks.append(("pruned+healed+int8 latency, student / it", student["latency_ms"] / composed["latency_ms"], "-"))
    print()
    for name, value, target in checks:
        print(f"  {name:45} {value:7.3f}   target {target}")
    print(f"\nwhole bench took {time.perf_counter() - started:.0f} s")
    (work / "bench_compress.json").write_text(json.dumps({"report": report, "checks": checks}, indent=2))
    print(f"full results: {work / 'bench_compress.json'}")


if __name__ == "__main__":
    main()
