"""Use the exported TF-IDF + logistic-regression classifier (one ONNX graph).

    python predict.py "My parcel never arrived"      one answer per text
    python predict.py --file texts.txt               one text per line
    python predict.py --json "..."                   machine-readable answers

Needs onnxruntime and numpy; nothing else.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def classify(texts: list[str]) -> list[tuple[str, float]]:
    """Label and confidence (the top class probability) per text."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(HERE / "baseline.onnx"), providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(None, {"text": np.array(texts, dtype=object).reshape(-1, 1)})
    return [(str(label), float(p.max())) for label, p in zip(labels, probabilities)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("texts", nargs="*", help="texts to classify")
    parser.add_argument("--file", type=Path, help="a text file, one input per line")
    parser.add_argument("--json", action="store_true", help="print one JSON object per input")
    args = parser.parse_args(argv)
    texts = args.texts + (args.file.read_text(encoding="utf-8").splitlines() if args.file else [])
    texts = [t for t in texts if t.strip()]
    if not texts:
        parser.error("give at least one text (or --file)")
    for text, (label, confidence) in zip(texts, classify(texts)):
        if args.json:
            print(json.dumps({"input": text, "answer": label, "confidence": round(confidence, 4)}))
        else:
            print(f"{label}\t(confidence {confidence:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
