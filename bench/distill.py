"""Measure the distillation core on real pretrained teachers, offline, on this machine's CPU.

    python bench/distill.py                # classification (MiniLM) then causal LM (SmolLM2)
    python bench/distill.py --only classification

Classification: MiniLM teacher fine-tuned on the bundled support tickets -> KD into a layer-dropped,
vocab-trimmed student; one table of quality, size and speed, plus the time of a KD epoch on cached
logits against a plain fine-tune epoch of the same student. Causal LM, the 'plain' recipe (the default
'answers' recipe is measured by bench/generate.py): SmolLM2-135M -> a student with a third of its layers,
distilled on the bundled shop FAQ split by answer (test answers never trained on); held-out perplexity
of the teacher, the student before KD (layers dropped only) and after KD, generation speed, and the
answers each wrote to the test questions, judged (studio.answers).
Every figure printed is measured in this run. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from studio.answers import answers_text  # noqa: E402
from studio.cli.tables import format_table  # noqa: E402
from studio.dataset import prepare_dataset  # noqa: E402
from studio.distill import distill  # noqa: E402
from studio.distill_config import DistillConfig  # noqa: E402
from studio.evaluate import evaluate_run  # noqa: E402
from studio.logs import quiet_terminal  # noqa: E402
from studio.models import load_classifier, load_tokenizer  # noqa: E402
from studio.run import RunPaths  # noqa: E402
from studio.stages import run_stage, stage_for, weighted_ce  # noqa: E402
from studio.student_setup import setup_student  # noqa: E402
from studio.teacher import resolve_source  # noqa: E402

SAMPLES = ROOT / "studio" / "samples"
TICKETS = dict(
    teacher="minilm-l6",
    epochs=4,
    teacher_epochs=3,
    teacher_learning_rate=1e-4,
    learning_rate=2e-4,
    temperature=2.0,
    alpha=0.5,
    max_length=128,
    batch_size=32,
    min_steps=0,
    patience=0,
)
"""The measured classification settings (bench/compress.py distils with them too)."""
PLAIN_GENERATOR = dict(
    batch_size=8, max_length=128, learning_rate=2e-4, temperature=1.0, alpha=0.5, top_k=32, min_steps=0, recipe="plain"
)
"""The measured text-generator settings of the plain recipe (bench/export.py distils with them too)."""


def machine() -> str:
    import torch

    return f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"


def plain_epoch_seconds(config: DistillConfig, dataset, run: RunPaths, epochs: int = 2) -> list[float]:
    """The same student, the same loop, labels only (no teacher at all): the baseline epoch."""
    teacher, _ = load_classifier(resolve_source(str(run.teacher)), dataset.report.labels)
    tokenizer = load_tokenizer(resolve_source(str(run.teacher)))
    with tempfile.TemporaryDirectory() as tmp:
        student, student_tok, _ = setup_student(config, teacher, tokenizer, dataset, RunPaths(tmp))
        plain = replace(config, min_steps=0, patience=0)
        stage = stage_for(plain, dataset, student_tok, config.max_length, epochs)
        return run_stage(
            student,
            stage,
            weighted_ce(None),
            plain,
            Path(tmp) / "ckpt",
            "plain",
            config.learning_rate,
            Path(tmp) / "m.jsonl",
            None,
        ).seconds


def bench_classification(work: Path, student_layers: int) -> dict:
    started = time.perf_counter()
    dataset = prepare_dataset(SAMPLES / "support_tickets.csv", work / "tickets")
    config = DistillConfig(**TICKETS, student_layers=student_layers)
    result = distill(config, dataset, work / "cls-run")
    plain = plain_epoch_seconds(config, dataset, RunPaths(work / "cls-run"))
    report = evaluate_run(work / "cls-run")
    teacher, student = report["models"][:2]
    kd_epoch = statistics.mean(result.epoch_seconds)
    plain_epoch = statistics.mean(plain)
    ratios = {
        "accuracy (student / teacher)": student["accuracy"] / teacher["accuracy"],
        "macro-F1 (student / teacher)": student["macro_f1"] / teacher["macro_f1"],
        "parameters (student / teacher)": student["params"] / teacher["params"],
        "size on disk (student / teacher)": student["size_bytes"] / teacher["size_bytes"],
        "CPU throughput (student / teacher)": student["throughput"] / teacher["throughput"],
        "CPU latency batch 1 (teacher / student)": teacher["latency_ms"] / student["latency_ms"],
        "KD epoch on cached logits / plain epoch": kd_epoch / plain_epoch,
    }
    targets = {
        "accuracy (student / teacher)": ">= 0.97",
        "macro-F1 (student / teacher)": ">= 0.97",
        "parameters (student / teacher)": "<= 0.50",
        "CPU throughput (student / teacher)": ">= 2.0",
        "KD epoch on cached logits / plain epoch": "<= 1.15",
    }
    print(
        f"\n== Classification: MiniLM-L6 teacher -> {student_layers}-layer student, "
        f"{dataset.report.rows_used} support tickets, {len(dataset.report.labels)} labels, "
        f"test split {report['test_examples']} rows"
    )
    print(format_table(report["models"]))
    print(
        f"teacher logits cached once in {result.cache_seconds:.1f} s; KD epochs "
        f"{', '.join(f'{s:.1f}' for s in result.epoch_seconds)} s; plain epochs {', '.join(f'{s:.1f}' for s in plain)} s"
    )
    for name, value in ratios.items():
        print(f"  {name:42} {value:6.3f}   target {targets.get(name, '-')}")
    print(f"classification bench took {time.perf_counter() - started:.0f} s")
    return {
        "report": report,
        "ratios": ratios,
        "kd_epoch_s": result.epoch_seconds,
        "plain_epoch_s": plain,
        "cache_s": result.cache_seconds,
    }


def bench_causal(work: Path, student_layers: int, epochs: int) -> dict:
    started = time.perf_counter()
    dataset = prepare_dataset(SAMPLES / "shop_faq.jsonl", work / "faq")
    print(dataset.report.split_note)
    print("data warnings:", dataset.report.warnings or "none (no test question nearly repeats a training one)")
    config = DistillConfig(
        teacher="smollm2-135m",
        student_layers=student_layers,
        epochs=epochs,
        **PLAIN_GENERATOR,
    )
    result = distill(config, dataset, work / "lm-run")
    report = evaluate_run(work / "lm-run", include_before_kd=True)
    print(
        f"\n== Causal LM: SmolLM2-135M teacher (30 layers) -> {student_layers}-layer student, "
        f"{dataset.report.rows_used} FAQ pairs, test split {report['test_examples']} pairs"
    )
    print(format_table(report["models"]))
    teacher, _, student = report["models"]
    print(
        f"teacher top-{config.top_k} logits cached once in {result.cache_seconds:.1f} s; "
        f"KD epochs {', '.join(f'{s:.1f}' for s in result.epoch_seconds)} s"
    )
    print(
        f"  generation speed student / teacher: {student['generation_tokens_per_s'] / teacher['generation_tokens_per_s']:.2f}x;"
        f" parameters student / teacher: {student['params'] / teacher['params']:.3f}"
    )
    print(answers_text(report["answers"], count=20))
    print(f"causal-LM bench took {time.perf_counter() - started:.0f} s")
    return {
        "report": report,
        "kd_epoch_s": result.epoch_seconds,
        "cache_s": result.cache_seconds,
        "splits": dataset.report.split_sizes,
        "warnings": dataset.report.warnings,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["classification", "causal"])
    parser.add_argument("--student-layers", type=int, default=2, help="classification student layers (of 6)")
    parser.add_argument("--lm-student-layers", type=int, default=10, help="causal student layers (of 30)")
    parser.add_argument("--lm-epochs", type=int, default=6)
    parser.add_argument("--work", type=Path, default=None, help="folder for runs (default: a temp folder)")
    args = parser.parse_args()
    quiet_terminal(ROOT / "bench" / "results" / "libraries.log")
    work = args.work or Path(tempfile.mkdtemp(prefix="slm-bench-"))
    print(f"machine: {machine()}; runs in {work}")
    results = {}
    if args.only in (None, "classification"):
        results["classification"] = bench_classification(work, args.student_layers)
    if args.only in (None, "causal"):
        results["causal_lm"] = bench_causal(work, args.lm_student_layers, args.lm_epochs)
    (work / "bench_distill.json").write_text(json.dumps(results, indent=2))
    print(f"\nfull results: {work / 'bench_distill.json'}")


if __name__ == "__main__":
    main()
