"""Small model first, big model when unsure: choose the confidence threshold and measure it.

The confidences come from the export's own predict.py (imported, not copied), so the share of
inputs the student answers alone is measured with exactly the code the user will run.

Classification: the threshold is chosen on the validation split by studio.hand_over's rule; the test
split then gives the figures.
Text generation has no single right answer to score, so the threshold is the one asked for,
or the student's median confidence on validation prompts; the test split gives the share the
student answers alone.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from studio.batches import question_of
from studio.export import predict
from studio.hand_over import choose_threshold, hybrid_accuracy, share_alone
from studio.words import Task

OTHER_THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
"""Shown beside the chosen threshold, so the card tells what a stricter hand-over would cost."""
CAUSAL_THRESHOLDS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.8)
CAUSAL_LIMIT = 40
"""Generation is slow on a CPU: the causal share is measured on at most this many test prompts."""


def _classify_all(runner: predict.Runner, records: list[dict]) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    for start in range(0, len(records), 32):
        out += predict.classify(runner, [r["text"] for r in records[start : start + 32]])
    return out


def measure_classifier(
    student: predict.Runner, teacher: predict.Runner, validation: list[dict], test: list[dict], threshold: float | None
) -> dict:
    if threshold is None:
        val_student = _classify_all(student, validation)
        val_teacher = [label for label, _ in _classify_all(teacher, validation)]
        threshold = choose_threshold(val_student, val_teacher, [r["label"] for r in validation])
        chosen = "chosen on the validation split: the lowest at which the hybrid stays within 1 point of the teacher"
    else:
        chosen = "set by the user"
    said = _classify_all(student, test)
    teacher_said = [label for label, _ in _classify_all(teacher, test)]
    labels = [r["label"] for r in test]
    curve = [
        {
            "threshold": t,
            "student_share": share_alone([c for _, c in said], t),
            "hybrid_accuracy": hybrid_accuracy(said, teacher_said, labels, t),
        }
        for t in OTHER_THRESHOLDS
    ]
    return {
        "threshold": threshold,
        "curve": curve,
        "threshold_source": chosen,
        "measured_on": f"test split, {len(test)} examples",
        "student_share": share_alone([c for _, c in said], threshold),
        "hybrid_accuracy": hybrid_accuracy(said, teacher_said, labels, threshold),
        "student_accuracy": hybrid_accuracy(said, teacher_said, labels, 0.0),
        "teacher_accuracy": sum(t == y for t, y in zip(teacher_said, labels)) / max(1, len(labels)),
    }


def _confidences(student: predict.Runner, records: list[dict]) -> list[float]:
    return [predict.generate(student, question_of(r), max_new_tokens=24)[1] for r in records[:CAUSAL_LIMIT]]


def measure_causal(
    student: predict.Runner, validation: list[dict], test: list[dict], threshold: float | None, why: str | None = None
) -> dict:
    if why is not None:
        source = why
    elif threshold is None:  # no right answer to aim at: split the validation prompts half and half
        threshold = round(statistics.median(_confidences(student, validation) or [0.5]), 4)
        source = "the student's median confidence on the validation split (raise it to send more to the teacher)"
    else:
        source = "set by the user"
    confidences = _confidences(student, test)
    return {
        "threshold": threshold,
        "threshold_source": source,
        "student_share": share_alone(confidences, threshold),
        "measured_on": f"test split, first {len(confidences)} prompts, 24 new tokens each",
        "curve": [{"threshold": t, "student_share": share_alone(confidences, t)} for t in CAUSAL_THRESHOLDS],
    }


def measure(
    export_dir: Path, settings: dict, validation: list[dict], test: list[dict], threshold: float | None, why: str | None = None
) -> dict:
    """The hybrid's figures for an export folder holding model/ (and onnx/) and teacher/."""
    student = predict.Runner(export_dir / "model", settings["task"], settings["runtime"], export_dir / "onnx" / "model.onnx")
    student.continue_text = settings.get("inputs") == "text"
    if settings["task"] == Task.CLASSIFICATION:
        teacher = predict.Runner(export_dir / "teacher", settings["task"])
        return measure_classifier(student, teacher, validation, test, threshold)
    return measure_causal(student, validation, test, threshold, why)
