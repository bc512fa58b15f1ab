"""Export the TF-IDF + logistic-regression baseline, for runs where it is the best model.

The baseline is fitted again on the run's training split (deterministic: the same model the evaluation
measured) and converted to ONNX with skl2onnx: no pickle leaves the studio, and the zip runs with
onnxruntime and numpy alone. ONNX's tokenizer is not scikit-learn's, so the exported graph is measured
on the test split itself, and its agreement with the baseline it came from goes into the card.

    README.md        what it is, how it was measured, its figures as exported
    baseline.onnx    text in, label and probabilities out
    predict.py       python predict.py "text"
    export.json      task, labels, what the zip holds
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from studio.baselines import TFIDF, fit_baselines
from studio.dataset import load_prepared
from studio.errors import ConfigError, UnsupportedError
from studio.export.card import md
from studio.export.settings import EXPORT_JSON, ExportResult
from studio.metrics import class_scores
from studio.progress import ProgressFn, item_progress
from studio.run import dataset_folder
from studio.words import Task

LOCALE = "C.UTF-8"
"""ONNX Runtime lower-cases with a named locale (en_US.UTF-8 unless told): C.UTF-8 exists on every Linux."""


def to_onnx_graph(pipeline) -> bytes:
    import onnx
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import StringTensorType

    model = to_onnx(
        pipeline, initial_types=[("text", StringTensorType([None, 1]))], options={id(pipeline.steps[-1][1]): {"zipmap": False}}
    )
    for node in model.graph.node:
        if node.op_type == "StringNormalizer":
            node.attribute.append(onnx.helper.make_attribute("locale", LOCALE))
    return model.SerializeToString()


def run_graph(graph: bytes | Path, texts: list[str]) -> tuple[list[str], np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(graph if isinstance(graph, bytes) else str(graph), providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(None, {"text": np.array(texts, dtype=object).reshape(-1, 1)})
    return [str(label) for label in labels], probabilities


def export_linear_baseline(run_dir: Path, out_zip: Path, zip_folder, on_progress: ProgressFn | None = None) -> ExportResult:
    """``zip_folder(stage, out_zip, root)`` writes the zip (the bundle's own, so every export zips alike)."""

    def say(step: int, message: str) -> None:
        if on_progress is not None:
            on_progress(item_progress("export", step, 3, message))

    config = json.loads((run_dir / "config.json").read_text())
    if config["task"] != Task.CLASSIFICATION:
        raise ConfigError(["the TF-IDF baseline exists for classification runs only"])
    labels = config["labels"]
    dataset = load_prepared(dataset_folder(config, run_dir))
    say(1, "fitting the TF-IDF baseline on the training split and converting it to ONNX")
    fitted = next((b for b in fit_baselines(dataset.split("train"), labels) if b.name == TFIDF), None)
    if fitted is None:
        raise UnsupportedError("the training split has a single label, so there is no TF-IDF baseline to export")
    graph = to_onnx_graph(fitted.pipeline)
    say(2, "measuring the exported graph on the test split")
    test = dataset.split("test")
    texts, index = [r["text"] for r in test], {label: i for i, label in enumerate(labels)}
    said, _ = run_graph(graph, texts)
    agreement = float(np.mean([a == str(b) for a, b in zip(said, fitted.pipeline.predict(texts))])) if texts else 1.0
    scores = class_scores([index[r["label"]] for r in test], [index[label] for label in said], labels)
    stage = out_zip.with_name(f".{out_zip.name}.staging")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        say(3, "writing the zip")
        (stage / "baseline.onnx").write_bytes(graph)
        shutil.copy2(Path(__file__).with_name("predict_linear.py"), stage / "predict.py")
        (stage / EXPORT_JSON).write_text(
            json.dumps({"task": Task.CLASSIFICATION, "labels": labels, "variant": TFIDF, "runtime": "onnx"}, indent=2)
        )
        files = {
            "README.md": "this model card",
            "baseline.onnx": "TF-IDF + logistic regression as one ONNX graph",
            "predict.py": 'python predict.py "text" (needs onnxruntime and numpy only)',
            "export.json": "labels and settings predict.py reads",
        }
        (stage / "README.md").write_text(
            _card(config, dataset.report, scores, agreement, len(test), fitted.params, len(graph)), encoding="utf-8"
        )
        size = zip_folder(stage, out_zip, root=out_zip.stem)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    notes = [f"ONNX graph answers like the scikit-learn baseline on {agreement:.1%} of the test texts"]
    return ExportResult(out_zip, size, files, None, notes, {"onnx_agreement": agreement})


def _card(config: dict, report, scores: dict, agreement: float, tested: int, params: int, size: int) -> str:
    lines = [
        "---",
        "library_name: onnx",
        "pipeline_tag: text-classification",
        "tags:",
        "  - slm-studio",
        "  - tfidf",
        "  - logistic-regression",
        "---",
        "",
        "# tfidf-baseline (SLM Studio export)\n",
        "TF-IDF of words and word pairs with logistic regression (balanced class weights), fitted with "
        "scikit-learn on the training split of the owner's data and converted to ONNX with skl2onnx. In this "
        "run no distilled model beat it, so it is exported as the model to use.\n",
        "## Use it\n",
        '```bash\npip install onnxruntime numpy\npython predict.py "your text here"\n```\n',
        "## Measured on the test split, as exported\n",
        f"- macro-F1 {scores['macro_f1']:.3f}, accuracy {scores['accuracy']:.1%} on {tested} test texts "
        f"(by the ONNX graph in this zip); {params:,} weights, {size / 1e6:.1f} MB.",
        f"- The ONNX graph gives the same label as the scikit-learn baseline the studio measured for "
        f"{agreement:.1%} of the test texts: ONNX Runtime splits words a little differently.",
        "",
        "| label | precision | recall | F1 | test examples |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {md(label)} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
        for label, m in scores["per_class"].items()
    ]
    lines += [
        "",
        "## Training data\n",
        f"- {report.rows_used} rows of the owner's data; labels: "
        + ", ".join(f"{md(k)} ({v})" for k, v in sorted(report.label_counts.items()))
        + ". No rows of the data are included in this export.",
        "",
        "## Limits\n",
        "- It knows only the words it saw in training: a new word counts for nothing. Check it on your own examples first.",
        "",
    ]
    return "\n".join(lines)
