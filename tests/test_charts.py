"""Compare-step figures and the budget recommendation, from rows shaped like compare.json."""

import pytest

from studio.charts import (
    Budget,
    class_balance_figure,
    confusion_figure,
    loss_figure,
    metric_bars,
    pareto_front,
    recommend,
    tradeoff_figure,
)


def row(name, macro_f1, mb, ms, throughput, params):
    return {
        "name": name,
        "status": "ok",
        "macro_f1": macro_f1,
        "accuracy": macro_f1 + 0.02,
        "size_bytes": mb * 1e6,
        "latency_ms": ms,
        "throughput": throughput,
        "params": params,
    }


MODELS = [
    row("teacher", 0.90, 90.9, 5.9, 281, 22.7e6),
    row("student", 0.90, 20.6, 2.3, 758, 5.2e6),
    row("int8", 0.8967, 7.2, 1.3, 760, 5.2e6),
    row("magnitude", 0.88, 13.0, 2.4, 700, 5.2e6),
    {"name": "bnb-nf4", "status": "unsupported", "note": "needs a GPU"},
]


def test_pareto_front_keeps_only_unbeaten_points():
    points = [(90.9, 0.90), (20.6, 0.90), (7.2, 0.8967), (13.0, 0.88)]
    assert pareto_front(points) == [1, 2]  # teacher: same quality, bigger; magnitude: beaten by int8
    assert pareto_front([(1, 10.0), (2, 5.0), (3, 7.0)], higher_quality_is_better=False) == [0, 1]  # perplexity


def test_tradeoff_figure_marks_the_front_and_leaves_out_unmeasured_variants():
    fig = tradeoff_figure(MODELS, "size_bytes", Budget(max_mb=15))
    points, front = fig.data
    assert list(points.text) == ["teacher", "student", "int8", "magnitude"]  # bnb-nf4 has no numbers
    assert sorted(front.x) == pytest.approx([7.2, 20.6])
    assert any(shape.x0 == 15 for shape in fig.layout.shapes)  # the budget line
    assert "latency" in tradeoff_figure(MODELS, "latency_ms").layout.xaxis.title.text
    floored = tradeoff_figure(MODELS, "size_bytes", Budget(min_quality=0.85))  # typed 85: drawn at 85 %
    assert any(shape.y0 == 0.85 for shape in floored.layout.shapes)
    assert "your quality limit: 85%" in [a.text for a in floored.layout.annotations]


def test_metric_bars_are_relative_to_the_teacher_and_higher_is_always_better():
    fig = metric_bars(MODELS)
    teacher, student = fig.data[0], fig.data[1]
    assert list(teacher.y) == pytest.approx([1.0] * 5)
    assert list(fig.data[0].x) == ["quality", "smaller", "faster", "throughput", "fewer parameters"]
    assert student.y[1] == pytest.approx(90.9 / 20.6)  # 4.4× smaller: above the teacher's bar, like better quality
    assert fig.data[2].y[0] < 1.0 < fig.data[2].y[2]  # int8: a little worse quality (below), faster (above)


def test_loss_and_balance_figures():
    fig = loss_figure([("teacher", 1, 2.0), ("teacher", 2, 1.5), ("student", 1, 1.2), ("student", 2, 0.9)])
    assert [t.name for t in fig.data] == ["teacher", "student"] and list(fig.data[1].y) == [1.2, 0.9]
    balance = class_balance_figure({"billing": 10, "returns": 30})
    assert list(balance.data[0].x) == ["returns", "billing"]


def test_recommend_picks_the_best_that_fits_and_says_why():
    rec = recommend(MODELS, Budget(max_mb=25, max_ms=3))
    assert rec.name == "student"  # as accurate as int8's better, fits both limits
    assert "0.9 (teacher 0.9)" in rec.reason and "20.6 MB" in rec.reason
    assert rec.misses["teacher"] == "is 90.9 MB, over 25 MB"
    small = recommend(MODELS, Budget(max_mb=10))
    assert small.name == "int8" and small.fits == ["int8"]
    none = recommend(MODELS, Budget(max_mb=5))
    assert none.name is None and "int8, is 7.2 MB, over 5 MB" in none.reason
    strict = recommend(MODELS, Budget(min_quality=0.95))
    assert strict.name is None and "below the 95% you asked for" in strict.reason
    # quality is what no model reaches: the advice is about quality, never "make a smaller variant"
    assert strict.reason.startswith("No model reaches the quality you asked for. The best, teacher, has macro-F1")
    assert "smaller variant" not in strict.reason and "Best quality preset" in strict.reason
    both = recommend(MODELS, Budget(max_mb=5, min_quality=0.5))  # quality within reach, size not
    assert "No model fits this budget" in both.reason and "smaller variant" in both.reason


def test_recommend_for_text_generators_prefers_low_perplexity():
    models = [
        {"name": "teacher", "perplexity": 60.0, "size_bytes": 5e8, "latency_ms": 30},
        {"name": "student", "perplexity": 2.0, "size_bytes": 2.5e8, "latency_ms": 15},
        {"name": "tiny", "perplexity": 9.0, "size_bytes": 1e8, "latency_ms": 8},
    ]
    assert recommend(models, Budget()).name == "student"
    rec = recommend(models, Budget(min_quality=5.0, max_ms=10))
    assert rec.name is None and rec.misses["tiny"] == "has perplexity 9, above 5"
    assert recommend([], Budget()).name is None


BASELINES = [row("majority-baseline", 0.25, 0.0, 0.01, 1e6, 1), row("tfidf-baseline", 0.60, 2.0, 0.3, 5000, 1e5)]


def test_baselines_are_reference_lines_not_candidates():
    fig = tradeoff_figure(MODELS + BASELINES, "size_bytes")
    assert list(fig.data[0].text) == ["teacher", "student", "int8", "magnitude"]
    lines = {round(shape.y0, 2) for shape in fig.layout.shapes if shape.y0 == shape.y1}
    assert lines == {0.25, 0.6}
    assert fig.layout.yaxis.range == (0, 1.05) and fig.layout.yaxis.tickformat == ".0%"  # 0-100 %
    assert fig.layout.yaxis.title.text == "macro-F1"
    assert len(set(fig.data[0].textposition)) > 1  # neighbours' names do not print over each other
    assert [t.name for t in metric_bars(MODELS + BASELINES).data] == ["teacher", "student", "int8", "magnitude"]


def test_a_model_that_does_not_beat_tfidf_is_never_recommended():
    weak = [row("teacher", 0.58, 90.9, 5.9, 281, 22.7e6), row("student", 0.62, 20.6, 2.3, 758, 5.2e6)]
    rec = recommend(weak + BASELINES, Budget())
    assert rec.name == "student" and "beats the TF-IDF baseline (0.600)" in rec.reason
    assert "does not beat the TF-IDF baseline" in rec.misses["teacher"]
    weaker = [row("teacher", 0.58, 90.9, 5.9, 281, 22.7e6), row("student", 0.55, 20.6, 2.3, 758, 5.2e6)]
    none = recommend(weaker + BASELINES, Budget())
    assert none.name is None and "No model beats the TF-IDF baseline (macro-F1 0.600)" in none.reason
    assert "Try another teacher (smollm2-135m" in none.reason and "more labelled data" in none.reason


def test_confusion_heatmap_colours_each_true_label_by_its_share():
    fig = confusion_figure({"name": "student", "confusion": [[8, 2], [5, 0]]}, ["a", "b"])
    assert [list(r) for r in fig.data[0].z] == [[0.8, 0.2], [1.0, 0.0]]
    assert [list(r) for r in fig.data[0].text] == [[8, 2], [5, 0]]
