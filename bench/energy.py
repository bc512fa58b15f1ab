"""Energy and cost of 1,000 answers on this machine, measured the way the Compare step measures every model.

    python bench/energy.py                 # MiniLM-L6 classifier and a 3-layer cut of it, the two baselines
    python bench/energy.py --generator     # and SmolLM2-135M writing answers (converts its GGUF once, ~20 s)

Speed and energy only: the classifiers' heads are untrained (a head's weights do not change its cost), so their
quality is not shown. Energy comes through studio.energy (CodeCarbon, offline); its basis is printed, so an
estimate is never read as a measurement. Every figure printed is measured in this run. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from studio.baselines import evaluate_baselines  # noqa: E402
from studio.dataset import prepare_dataset  # noqa: E402
from studio.energy import PRICE_PER_HOUR, EnergyMeter, machine_cost, money  # noqa: E402
from studio.evaluate import evaluate_causal_lm, evaluate_classifier  # noqa: E402
from studio.metrics import ANSWER_TOKENS, ModelMetrics  # noqa: E402
from studio.models import load_causal_lm, load_classifier, load_tokenizer  # noqa: E402
from studio.student import layer_drop_student  # noqa: E402
from studio.teacher import resolve_source  # noqa: E402

SAMPLES = ROOT / "studio" / "samples"


def classifiers(work: Path) -> list[ModelMetrics]:
    dataset = prepare_dataset(SAMPLES / "support_tickets.csv", work / "tickets")
    test, labels = dataset.split("test"), dataset.report.labels
    source = resolve_source("minilm-l6")
    teacher, _ = load_classifier(source, labels)
    tokenizer = load_tokenizer(source)
    rows = []
    for name, model in [("minilm-l6 (6 layers)", teacher), ("3-layer cut", layer_drop_student(teacher, 3))]:
        metrics, _ = evaluate_classifier(name, model, tokenizer, test, labels, size_bytes=0, max_length=128, batch_size=32)
        rows.append(metrics)
    rows += evaluate_baselines(dataset.split("train"), test, labels)
    print(f"\n== Classification: support tickets, test split {len(test)} texts, batch 32, max length 128")
    return rows


def generator(work: Path) -> list[ModelMetrics]:
    dataset = prepare_dataset(SAMPLES / "shop_faq.jsonl", work / "faq")
    source = resolve_source("smollm2-135m")
    model, tokenizer = load_causal_lm(source), load_tokenizer(source)
    metrics, _ = evaluate_causal_lm("smollm2-135m", model, tokenizer, dataset.split("test")[:8], size_bytes=0, max_length=128)
    print(f"\n== Text generation: an answer is {ANSWER_TOKENS} tokens written at batch 1")
    return [metrics]


def show(rows: list[ModelMetrics]) -> None:
    print(f"{'model':22} {'answers/s':>10} {'W':>6} {'Wh / 1,000':>11} {'cost / 1,000':>13}")
    for m in rows:
        watts = m.energy_wh_per_1000 * 3600 / m.seconds_per_1000
        cost = money(machine_cost(m.seconds_per_1000, PRICE_PER_HOUR))
        print(f"{m.name:22} {1000 / m.seconds_per_1000:10.3g} {watts:6.1f} {m.energy_wh_per_1000:11.4g} {cost:>13}")
    print(f"cost at {money(PRICE_PER_HOUR)} an hour; basis: {rows[0].energy_basis}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", action="store_true", help="also SmolLM2-135M writing answers")
    args = parser.parse_args()
    import torch

    print(f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads")
    with EnergyMeter() as idle:  # what the machine draws doing nothing: the floor under every figure
        time.sleep(2)
    print(f"idle: {idle.reading.watts:.1f} W")
    with tempfile.TemporaryDirectory() as tmp:
        show(classifiers(Path(tmp)))
        if args.generator:
            show(generator(Path(tmp)))


if __name__ == "__main__":
    main()
