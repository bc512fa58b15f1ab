"""Measure export on real models, offline, on CPU: what the zips hold, how big they are, how long they
take, how closely each format answers like its source, and the small-model-first hybrid's share.

    python bench/export.py                          # MiniLM on the tickets, then SmolLM2 on the FAQ
    python bench/export.py --run RUN --lm-run RUN   # reuse finished runs (e.g. from bench/compress.py)
    python bench/export.py --only classification

Each exported zip is unpacked and loaded in a fresh Python process that cannot import the studio;
its predictions on the test split are compared with the model it came from. Every figure printed
is measured in this run. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from bench.compress import distill_run  # noqa: E402
from bench.distill import PLAIN_GENERATOR, machine  # noqa: E402
from studio.compress.pipeline import compress_many, parse_recipe  # noqa: E402
from studio.dataset import prepare_dataset  # noqa: E402
from studio.distill import distill  # noqa: E402
from studio.distill_config import DistillConfig  # noqa: E402
from studio.evaluate import evaluate_all  # noqa: E402
from studio.export.bundle import export_model  # noqa: E402
from studio.export.settings import ExportSettings  # noqa: E402
from studio.logs import quiet_terminal  # noqa: E402

SAMPLES = ROOT / "studio" / "samples"
VARIANTS = [("int8", "int8"), ("slim-healed", "prune-heads:fraction=0.5+prune-neurons:fraction=0.5+heal:epochs=2")]

AGREE = r"""
import json, sys
from pathlib import Path
import numpy as np
folder, texts = Path(sys.argv[1]), json.loads(sys.argv[2])
from transformers import AutoModelForSequenceClassification, AutoTokenizer
import onnxruntime
tok = AutoTokenizer.from_pretrained(folder / "model")
model = AutoModelForSequenceClassification.from_pretrained(folder / "model").eval()
enc = tok(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
out = {"model": model(**enc).logits.argmax(-1).tolist()}
if (folder / "onnx" / "model.onnx").exists():
    s = onnxruntime.InferenceSession(str(folder / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = {k: enc[k].numpy().astype(np.int64) for k in ("input_ids", "attention_mask")}
    out["onnx"] = s.run(None, feeds)[0].argmax(-1).tolist()
print(json.dumps(out))
"""


def unpack(zip_path: Path, dest: Path) -> Path:
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(dest)
    return dest / zip_path.stem


def fresh_predictions(folder: Path, texts: list[str]) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-c", AGREE, str(folder), json.dumps(texts)],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
        timeout=1200,
    )
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    return json.loads(done.stdout.splitlines()[-1])


def export_one(run: Path, work: Path, settings: ExportSettings) -> tuple[Path, dict]:
    started = time.perf_counter()
    result = export_model(run, settings, work / f"{settings.variant}.zip")
    seconds = time.perf_counter() - started
    with zipfile.ZipFile(result.zip_path) as zf:
        unpacked = sum(i.file_size for i in zf.infolist())
        parts: dict[str, int] = {}
        for info in zf.infolist():
            part = info.filename.split("/")[1]
            parts[part] = parts.get(part, 0) + info.file_size
    row = {
        "variant": settings.variant,
        "zip_mb": result.bytes / 1e6,
        "unpacked_mb": unpacked / 1e6,
        "seconds": seconds,
        "files": list(result.files),
        "checks": result.checks,
        "hybrid": result.hybrid,
        "notes": result.notes,
        "parts_mb": {k: v / 1e6 for k, v in parts.items()},
    }
    gguf = [path for path in result.files if path.startswith("gguf/")]
    differences = {k: v for k, v in result.checks.items() if not k.startswith("gguf/")}
    print(
        f"  {settings.variant:14} zip {row['zip_mb']:7.1f} MB (unpacked {row['unpacked_mb']:7.1f} MB) in "
        f"{seconds:5.1f} s; largest logit difference vs source: " + ", ".join(f"{k} {v:.2e}" for k, v in differences.items())
    )
    if gguf:
        print(
            "      gguf (size, next tokens as the float model): "
            + ", ".join(f"{p} {result.checks[f'{p} bytes'] / 1e6:.1f} MB {result.checks[f'{p} agreement']:.1%}" for p in gguf)
        )
    print("      unpacked: " + ", ".join(f"{k} {v:.1f} MB" for k, v in row["parts_mb"].items() if v >= 0.1))
    if result.hybrid:
        h = result.hybrid
        line = (
            f"      hybrid: threshold {h['threshold']:.3f} ({h['threshold_source']}); student alone on "
            f"{h['student_share']:.1%} ({h['measured_on']})"
        )
        if "hybrid_accuracy" in h:
            line += (
                f"; accuracy student {h['student_accuracy']:.1%}, hybrid {h['hybrid_accuracy']:.1%}, "
                f"teacher {h['teacher_accuracy']:.1%}"
            )
        print(line)
        for point in h.get("curve", []):
            accuracy = f", hybrid accuracy {point['hybrid_accuracy']:.1%}" if "hybrid_accuracy" in point else ""
            print(f"        at {point['threshold']:.2f}: student alone {point['student_share']:.1%}{accuracy}")
    return result.zip_path, row


def bench_classification(work: Path, run: Path | None) -> list[dict]:
    run = run or distill_run(work, 2)
    missing = [(n, parse_recipe(r)) for n, r in VARIANTS if not (run / "variants" / n).exists()]
    if missing:
        compress_many(run, missing)
        evaluate_all(run, measure_memory=False)
    test = json.loads((run / "config.json").read_text())["dataset"]
    texts = [json.loads(line)["text"] for line in (Path(test) / "test.jsonl").read_text().splitlines()]
    print(f"\n== Classification exports of {run} ({len(texts)} test tickets)")
    rows = []
    for settings in [
        ExportSettings(variant="student", hybrid=True),
        ExportSettings(variant="int8", hybrid=True),
        ExportSettings(variant="slim-healed"),
    ]:
        zip_path, row = export_one(run, work, settings)
        got = fresh_predictions(unpack(zip_path, work / f"unzipped-{settings.variant}"), texts)
        reference = got.get("model")
        row["fresh_process"] = {k: sum(a == b for a, b in zip(v, reference)) / len(v) for k, v in got.items()}
        print("      fresh process, same label as model/: " + ", ".join(f"{k} {v:.1%}" for k, v in row["fresh_process"].items()))
        rows.append(row)
    return rows


def bench_causal(work: Path, run: Path | None) -> list[dict]:
    if run is None:
        dataset = prepare_dataset(SAMPLES / "shop_faq.jsonl", work / "faq")
        config = DistillConfig(
            teacher="smollm2-135m",
            student_layers=10,
            epochs=1,
            **PLAIN_GENERATOR,
        )  # what the export costs, not what the model says
        distill(config, dataset, work / "lm-run")
        run = work / "lm-run"
    print(f"\n== Causal-LM export of {run}")
    _, row = export_one(run, work, ExportSettings(variant="student", hybrid=True))
    return [row]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="a finished classification run to reuse")
    parser.add_argument("--lm-run", type=Path, help="a finished causal-LM run to reuse")
    parser.add_argument("--only", choices=["classification", "causal"])
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    quiet_terminal(ROOT / "bench" / "results" / "libraries.log")
    work = args.work or Path(tempfile.mkdtemp(prefix="slm-bench-export-"))
    print(f"machine: {machine()}; work in {work}")
    started = time.perf_counter()
    results = {}
    if args.only in (None, "classification"):
        results["classification"] = bench_classification(work, args.run)
    if args.only in (None, "causal"):
        results["causal_lm"] = bench_causal(work, args.lm_run)
    print(f"\nwhole bench took {time.perf_counter() - started:.0f} s")
    (work / "bench_export.json").write_text(json.dumps(results, indent=2))
    print(f"full results: {work / 'bench_export.json'}")


if __name__ == "__main__":
    main()
