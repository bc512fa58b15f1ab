"""The measured columns of a model, in one table: what each is called and how its value reads.

The CLI's tables, the model card, the Compare step and the History step all show measurements from this
table, so a metric is added or renamed in one place. ModelMetrics is the record every model's measurement
fills (teacher, student, variants and baselines alike), with the scoring functions they share.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from studio.energy import Energy, wh_text


@dataclass(frozen=True)
class Column:
    key: str
    """The metric's name in evaluation reports (eval.json, compare.json) and the database."""
    title: str
    """As people read it (card, browser)."""
    short: str
    """For a narrow text table (CLI)."""
    reads: Callable[[float], str]
    """A value as text, with its unit."""

    def text(self, value: object) -> str:
        if value is None:
            return "–"
        if isinstance(value, bool):
            return "yes" if value else "NO"
        return self.reads(value) if isinstance(value, (int, float)) else str(value)


def _mb(v: float) -> str:
    return f"{v / 1e6:.1f} MB"


COLUMNS = [
    Column("macro_f1", "macro-F1", "macro-F1", lambda v: f"{v:.3f}"),
    Column("accuracy", "accuracy", "accuracy", lambda v: f"{v:.1%}"),
    Column("perplexity", "perplexity", "perplexity", lambda v: f"{v:.2f}"),
    Column("rouge_l", "ROUGE-L of its answers", "ROUGE-L", lambda v: f"{v:.3f}"),
    Column("chrf", "chrF of its answers", "chrF", lambda v: f"{v:.1f}"),
    Column("answer_perplexity", "teacher's perplexity of its answers", "answer ppl", lambda v: f"{v:.1f}"),
    Column("degenerate_share", "degenerate answers", "degenerate", lambda v: f"{v:.0%}"),
    Column("fluent", "answers read as language", "fluent", str),
    Column("agreement", "agrees with teacher", "agree", lambda v: f"{v:.1%}"),
    Column("student_share", "answers without the teacher", "alone", lambda v: f"{v:.0%}"),
    Column("hybrid_accuracy", "accuracy, teacher asked when unsure", "w/ teacher", lambda v: f"{v:.1%}"),
    Column("params", "parameters", "params", lambda v: f"{v / 1e6:.2f} M"),
    Column("size_bytes", "size on disk", "size", _mb),
    Column("latency_ms", "latency per request", "ms/item", lambda v: f"{v:.1f} ms"),
    Column("throughput", "requests per second", "per s", lambda v: f"{v:.1f}"),
    Column("generation_tokens_per_s", "tokens written per second", "gen tok/s", lambda v: f"{v:.1f}"),
    Column("peak_load_mb", "memory to load", "load MB", lambda v: f"{v:.0f} MB"),
    Column("energy_wh_per_1000", "energy per 1,000 answers", "Wh/1k", wh_text),
]
BY_KEY = {c.key: c for c in COLUMNS}


def shown(rows: list[dict], keys: list[str] | None = None) -> list[Column]:
    """The columns (all, or those of ``keys`` in that order) that at least one row has a value for."""
    columns = COLUMNS if keys is None else [BY_KEY[k] for k in keys]
    return [c for c in columns if any(r.get(c.key) is not None for r in rows)]


def scores_text(values: dict[str, float], keys: list[str]) -> str:
    """'accuracy 91.2%, size on disk 90.9 MB': a model's scores in a sentence."""
    return ", ".join(f"{BY_KEY[k].title} {BY_KEY[k].text(values[k])}" for k in keys if values.get(k) is not None)


@dataclass
class ModelMetrics:
    name: str
    params: int
    size_bytes: int
    latency_ms: float
    """Median milliseconds for one example (classification) or one generated token (causal LM)."""
    throughput: float
    """Examples per second at batch N (classification) or tokens scored per second (causal LM)."""
    accuracy: float | None = None
    macro_f1: float | None = None
    perplexity: float | None = None
    agreement: float | None = None
    """Share of test predictions (classes, or next tokens) equal to the teacher's."""
    generation_tokens_per_s: float | None = None
    peak_load_mb: float | None = None
    """Peak memory a fresh process adds to load the model and answer one request (MB)."""
    form: str = "torch"
    """How it runs: 'torch', 'bnb' (bitsandbytes), 'onnx' (ONNX Runtime) or 'sklearn' (a baseline)."""
    status: str = "ok"
    note: str = ""
    per_class: dict[str, dict[str, float]] | None = None
    """Classification: precision, recall, F1 and support of each label on the test split."""
    confusion: list[list[int]] | None = None
    """Classification: test examples by true label (rows) and predicted label (columns), in label order."""
    warnings: list[str] = field(default_factory=list)
    """What a user must know before trusting this model (it answers one class, it loses to a baseline)."""
    rouge_l: float | None = None
    """Text generation: mean ROUGE-L F (0-1) of its answers to held-out prompts against the references."""
    chrf: float | None = None
    answer_perplexity: float | None = None
    """Text generation: the teacher's perplexity of this model's answers (human answers: see the report)."""
    repetition: float | None = None
    degenerate_share: float | None = None
    fluent: bool | None = None
    """Text generation: False when its answers fail the fluency check (see studio.answers)."""
    fluency_note: str = ""
    hand_over_threshold: float | None = None
    """Classification, every model but the teacher: below this confidence the teacher is asked (studio.hand_over,
    chosen on the validation split)."""
    student_share: float | None = None
    """The share of test examples it answers alone at that threshold ..."""
    hybrid_accuracy: float | None = None
    """... and the test accuracy of it with the teacher answering the rest."""
    seconds_per_1000: float | None = None
    """Seconds this model takes for 1,000 answers: at batch N for classifiers (from ``throughput``); for text
    generators an answer is a generation of ANSWER_TOKENS tokens at batch 1 (from ``generation_tokens_per_s``).
    Cost per 1,000 answers is these hours times the price of an hour, figured where it is shown (studio.energy)."""
    energy_wh_per_1000: float | None = None
    """Watt-hours for those 1,000 answers: the machine's average power while this model's speed was measured, times
    ``seconds_per_1000``."""
    energy_basis: str = ""
    """Whether that power was measured (power counters) or estimated, and from what (studio.energy)."""

    def add_energy(self, energy: Energy | None, answers_per_s: float) -> None:
        """Time and energy for 1,000 answers at ``answers_per_s``, at the average power of ``energy`` (nothing when
        there is no reading, e.g. in a process whose speed figures are not used)."""
        if energy is None or answers_per_s <= 0:
            return
        self.seconds_per_1000 = 1000 / answers_per_s
        self.energy_wh_per_1000 = energy.over(self.seconds_per_1000)
        self.energy_basis = energy.basis


def class_scores(truth: list[int], predictions: list[int], labels: list[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix; label ids in ``labels`` order."""
    # imported here: scikit-learn takes 2 s to load, and the CLI, the worker and the tables that show scores never
    # compute one (only a measuring process does)
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    ids = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(truth, predictions, labels=ids, zero_division=0)
    per_class = {
        label: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i])}
        for i, label in enumerate(labels)
    }
    return {
        "accuracy": float(accuracy_score(truth, predictions)),
        "macro_f1": float(f1_score(truth, predictions, average="macro", labels=ids, zero_division=0)),
        "per_class": per_class,
        "confusion": confusion_matrix(truth, predictions, labels=ids).tolist(),
    }


def agreement(predictions: list[int], reference: list[int] | None) -> float | None:
    """Share of ``predictions`` equal to the ``reference`` model's (None without one)."""
    if reference is None:
        return None
    return sum(a == b for a, b in zip(predictions, reference)) / max(1, len(reference))


def median_ms(fn, inputs: list) -> float:
    """Median milliseconds of ``fn`` over ``inputs``, one at a time, after one warm-up call."""
    fn(inputs[0])  # warm-up
    times = []
    for item in inputs:
        started = time.perf_counter()
        fn(item)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


LATENCY_SAMPLES = 40
ANSWER_TOKENS = 32
"""Tokens a text generator writes per answer when its speed, and so its energy per answer, is measured."""
