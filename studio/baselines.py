"""Baselines every classification result is shown beside: what a model must beat to be worth its cost.

    majority   always answers the commonest training label (what a collapsed model does)
    tf-idf     TF-IDF of words and word pairs + logistic regression: a second of CPU, often strong

Both are fitted on the training split only and measured on the same test split as the teacher and
student, with the same metrics. A model that does not beat the TF-IDF baseline is never recommended.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from studio.energy import metered
from studio.metrics import LATENCY_SAMPLES, ModelMetrics, agreement, class_scores, median_ms

MAJORITY, TFIDF = "majority-baseline", "tfidf-baseline"
NAMES = (MAJORITY, TFIDF)
BASE_TEACHER = "untuned teacher"
"""A text generator's teacher as installed, before it learnt the user's answers: it judges every model's answers
and shows what tuning added. A reference, never recommended (the tuned teacher is what exports)."""


@dataclass
class Baseline:
    name: str
    pipeline: Any
    """A scikit-learn pipeline: texts in, labels out."""
    params: int
    size_bytes: int
    """Bytes of what it needs to answer: vocabulary (UTF-8) and float32 weights."""
    fit_seconds: float


def fit_baselines(train: list[dict], labels: list[str]) -> list[Baseline]:
    # scikit-learn loads here, not with the names above: the worker's main process only needs those.
    from sklearn.dummy import DummyClassifier
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts, truth = [r["text"] for r in train], [r["label"] for r in train]
    majority = make_pipeline(DummyClassifier(strategy="most_frequent"))
    started = time.perf_counter()
    majority.fit(texts, truth)
    made = [Baseline(MAJORITY, majority, 1, 8, time.perf_counter() - started)]
    # Balanced class weights: the same care for rare labels the studio's own training takes.
    tfidf = make_pipeline(
        TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1, max_features=200_000),
        LogisticRegression(max_iter=2000, class_weight="balanced"),
    )
    started = time.perf_counter()
    if len(set(truth)) > 1:
        tfidf.fit(texts, truth)
        vectorizer, model = tfidf.steps[0][1], tfidf.steps[1][1]
        vocab_bytes = sum(len(word.encode()) + 4 for word in vectorizer.vocabulary_)
        params = model.coef_.size + model.intercept_.size + len(vectorizer.idf_)
        made.append(Baseline(TFIDF, tfidf, params, vocab_bytes + 4 * params, time.perf_counter() - started))
    return made


def predictor(baseline: Baseline, labels: list[str]) -> Callable[[list[str]], list[int]]:
    """Texts -> label ids (in the run's label order), like the models' argmax."""
    index = {label: i for i, label in enumerate(labels)}

    def predict(texts: list[str]) -> list[int]:
        return [index[str(p)] for p in baseline.pipeline.predict(texts)]

    return predict


def evaluate_baselines(
    train: list[dict], test: list[dict], labels: list[str], teacher_predictions: list[int] | None = None
) -> list[ModelMetrics]:
    """The majority-class and TF-IDF baselines, fitted on ``train``, measured on ``test`` like every model."""
    index = {label: i for i, label in enumerate(labels)}
    texts, truth = [r["text"] for r in test], [index[r["label"]] for r in test]
    rows = []
    for baseline in fit_baselines(train, labels):
        predict = predictor(baseline, labels)
        predict(texts[:1])  # warm-up
        predictions, seconds, energy = metered(lambda predict=predict: predict(texts))
        throughput = len(texts) / max(seconds, 1e-9)
        metrics = ModelMetrics(
            name=baseline.name,
            params=baseline.params,
            size_bytes=baseline.size_bytes,
            latency_ms=median_ms(lambda text, predict=predict: predict([text]), texts[:LATENCY_SAMPLES]),
            throughput=throughput,
            agreement=agreement(predictions, teacher_predictions),
            form="sklearn",
            note=f"fitted on the {len(train):,} training rows in {baseline.fit_seconds:.1f} s",
            **class_scores(truth, predictions, labels),
        )
        metrics.add_energy(energy, throughput)
        rows.append(metrics)
    return rows


ONE_CLASS = 0.95
"""A classifier that gives one label to this share of the test texts has (almost) collapsed."""


def add_quality_warnings(rows: list[dict]) -> None:
    """Flag classifiers that answer (almost) one class, or do not beat the majority or TF-IDF baseline, and text
    generators whose answers fail the fluency check."""
    for row in rows:
        if row.get("fluent") is False:
            row["warnings"] = [f"fails the fluency check: {row['fluency_note']}"]
    by_name = {row["name"]: row for row in rows}
    majority, tfidf = (by_name.get(name, {}).get("macro_f1") for name in NAMES)
    for row in rows:
        if row.get("confusion") is None or row["name"] in NAMES:
            continue
        row["warnings"] = warnings = []
        predicted = [sum(column) for column in zip(*row["confusion"])]
        top = max(predicted) / max(1, sum(predicted))
        if top >= ONE_CLASS:
            warnings.append(f"answers one label for {top:.0%} of the test texts: it has not learned your labels")
        if majority is not None and row["macro_f1"] <= majority:
            warnings.append("does not beat always answering the commonest label (majority baseline)")
        elif tfidf is not None and row["macro_f1"] <= tfidf:
            warnings.append(f"does not beat the TF-IDF baseline (macro-F1 {row['macro_f1']:.3f} vs {tfidf:.3f})")
