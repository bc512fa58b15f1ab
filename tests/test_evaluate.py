import json

import pytest

from studio.baselines import MAJORITY, TFIDF, add_quality_warnings, evaluate_baselines
from studio.cli.tables import format_table
from studio.dataset import prepare_dataset
from studio.evaluate import evaluate_classifier, evaluate_run
from studio.models import load_classifier, load_tokenizer
from studio.run import LABELS_ONLY
from studio.teacher import resolve_source


def test_teacher_agrees_with_itself_and_metrics_are_consistent(tiny_bert, samples, tmp_path):
    data = tmp_path / "t.csv"
    data.write_text("\n".join((samples / "support_tickets.csv").read_text().splitlines()[:201]) + "\n")
    test = prepare_dataset(data, tmp_path / "ds").split("test")
    labels = sorted({r["label"] for r in test})
    source = resolve_source(str(tiny_bert))
    model, _ = load_classifier(source, labels)
    tok = load_tokenizer(source)
    first, preds = evaluate_classifier("a", model, tok, test, labels, size_bytes=1)
    second, _ = evaluate_classifier("b", model, tok, test, labels, size_bytes=1, teacher_predictions=preds)
    assert second.agreement == 1.0 and second.accuracy == first.accuracy
    truth = [labels.index(r["label"]) for r in test]
    assert first.accuracy == sum(p == t for p, t in zip(preds, truth)) / len(truth)
    table = format_table([vars(first), vars(second)])
    assert table.splitlines()[0].split()[:3] == ["model", "macro-F1", "accuracy"]
    assert sum(sum(row) for row in first.confusion) == len(test) and set(first.per_class) == set(labels)
    assert first.macro_f1 == pytest.approx(sum(m["f1"] for m in first.per_class.values()) / len(labels))


def test_baselines_are_fitted_on_train_and_measured_on_test(tmp_path):
    words = {
        "billing": "invoice charge refund payment",
        "delivery": "parcel courier late tracking",
        "account": "password login email reset",
    }
    train = [{"text": f"{w} {i}", "label": label} for label, w in words.items() for i in range(20)]
    train += [{"text": f"{words['billing']} extra {i}", "label": "billing"} for i in range(60)]  # 2 in 3 are billing
    test = [{"text": w.split()[i % 4], "label": label} for label, w in words.items() for i in range(8)]
    majority, tfidf = evaluate_baselines(train, test, sorted(words))
    assert (majority.name, tfidf.name) == (MAJORITY, TFIDF)
    assert majority.accuracy == pytest.approx(1 / 3) and majority.per_class["billing"]["recall"] == 1.0
    assert majority.macro_f1 == pytest.approx((2 * (1 / 3) / (1 + 1 / 3)) / 3)
    assert tfidf.macro_f1 == 1.0 and tfidf.form == "sklearn" and "120 training rows" in tfidf.note
    assert tfidf.latency_ms > 0 and tfidf.throughput > 0 and tfidf.size_bytes > 0


def test_a_collapsed_model_or_one_below_a_baseline_is_flagged():
    rows = [
        {"name": "teacher", "macro_f1": 0.26, "confusion": [[30, 0, 0], [10, 0, 0], [5, 0, 0]]},
        {"name": "student", "macro_f1": 0.40, "confusion": [[20, 5, 5], [3, 6, 1], [2, 1, 2]]},
        {"name": "good", "macro_f1": 0.70, "confusion": [[28, 1, 1], [1, 8, 1], [1, 1, 3]]},
        {"name": MAJORITY, "macro_f1": 0.26, "confusion": [[30, 0, 0], [10, 0, 0], [5, 0, 0]]},
        {"name": TFIDF, "macro_f1": 0.47, "confusion": [[25, 3, 2], [4, 5, 1], [2, 1, 2]]},
    ]
    add_quality_warnings(rows)
    teacher, student, good = rows[0]["warnings"], rows[1]["warnings"], rows[2]["warnings"]
    assert any("answers one label for 100% of the test texts" in w for w in teacher)
    assert any("majority baseline" in w for w in teacher)
    assert student == ["does not beat the TF-IDF baseline (macro-F1 0.400 vs 0.470)"]
    assert good == [] and "warnings" not in rows[3]


def test_a_run_is_measured_beside_its_baselines_and_labels_only_student(tiny_bert, samples, tmp_path):
    from studio.distill import distill
    from tiny_models import small_config

    data = tmp_path / "t.csv"
    data.write_text("\n".join((samples / "support_tickets.csv").read_text().splitlines()[:301]) + "\n")
    dataset = prepare_dataset(data, tmp_path / "ds")
    distill(small_config(teacher=str(tiny_bert), labels_only_student=True), dataset, tmp_path / "run")
    report = evaluate_run(tmp_path / "run")
    names = [m["name"] for m in report["models"]]
    assert names == ["teacher", "student", LABELS_ONLY, MAJORITY, TFIDF]
    assert report["labels"] == dataset.report.labels and "tokens" in report["plan"]
    for model in report["models"]:
        confusion = model["confusion"]
        assert len(confusion) == len(dataset.report.labels) and sum(map(sum, confusion)) == report["test_examples"]
        f1s = [2 * confusion[i][i] / max(1, sum(confusion[i]) + sum(row[i] for row in confusion)) for i in range(len(confusion))]
        assert model["macro_f1"] == pytest.approx(sum(f1s) / len(f1s))  # the headline agrees with what it counted
        assert model["accuracy"] == pytest.approx(sum(confusion[i][i] for i in range(len(confusion))) / report["test_examples"])
    resolved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert set(resolved["plan"]["stages"]) == {"teacher", "student", "labels-only student"}
