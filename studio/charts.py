"""Plotly figures and the budget recommendation for the Compare step. Pure functions of plain rows
(the dicts in compare.json / the metrics table), so the UI only places them and tests read them.

A model row has: name, status, accuracy / macro_f1 (classification) or rouge_l / perplexity (causal LM),
size_bytes, latency_ms, throughput, params, agreement, and energy_wh_per_1000 / seconds_per_1000 / energy_basis
(studio.energy: the cost of 1,000 answers is figured here from a price per hour). Baseline rows (majority
class, TF-IDF) are drawn as reference lines, never as candidates: a model that does not beat the TF-IDF
baseline is not recommended, nor a text generator whose answers fail the fluency check (studio.answers).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field

import plotly.graph_objects as go

from studio.baselines import BASE_TEACHER, MAJORITY, TFIDF
from studio.baselines import NAMES as BASELINES
from studio.energy import machine_cost, money, wh_text

TEACHER, FRONT, OTHER, OUT, BASELINE = "#6b7280", "#2563eb", "#93c5fd", "#d1d5db", "#b45309"


# --------------------------------------------------------------------------- quality


def quality_key(models: Sequence[dict]) -> tuple[str, bool]:
    """(metric, higher is better): macro-F1 for classifiers (accuracy flatters a model that answers the
    commonest label); for text generators ROUGE-L of their answers against the reference answers (what
    they write), perplexity only for runs measured before answers were judged."""
    if any(m.get("macro_f1") is not None for m in models):
        return "macro_f1", True
    if any(m.get("rouge_l") is not None for m in models):
        return "rouge_l", True
    return "perplexity", False


QUALITY_WORDS = {"macro_f1": "macro-F1", "rouge_l": "ROUGE-L", "perplexity": "perplexity"}


def measured(models: Sequence[dict]) -> list[dict]:
    """Models that were really measured (a variant this machine could not make has no numbers); baselines
    are references, not candidates."""
    key, _ = quality_key(models)
    return [
        m
        for m in models
        if m.get("status", "ok") == "ok"
        and m.get(key) is not None
        and m["name"] not in BASELINES
        and m.get("size_bytes") is not None
        and m.get("latency_ms") is not None
    ]


def baseline_scores(models: Sequence[dict]) -> dict[str, float]:
    """The baselines' macro-F1 by name (empty for text generators)."""
    return {m["name"]: m["macro_f1"] for m in models if m["name"] in BASELINES and m.get("macro_f1") is not None}


def _reference_lines(fig: go.Figure, models: Sequence[dict]) -> None:
    words = {MAJORITY: "always the commonest label", TFIDF: "TF-IDF + logistic regression"}
    for name, value in baseline_scores(models).items():
        fig.add_hline(
            y=value,
            line_dash="dash" if name == TFIDF else "dot",
            line_color=BASELINE,
            annotation_text=f"{words[name]}: {value:.1%}",  # baselines are classifiers: macro-F1, a share
            annotation_position="bottom right",
        )


def pareto_front(points: Sequence[tuple[float, float]], higher_quality_is_better: bool = True) -> list[int]:
    """Indices of points no other point beats on both cost (lower is better) and quality."""
    sign = 1 if higher_quality_is_better else -1
    front = []
    for i, (cost, quality) in enumerate(points):
        beaten = any(
            c <= cost and sign * q >= sign * quality and (c < cost or sign * q > sign * quality)
            for j, (c, q) in enumerate(points)
            if j != i
        )
        if not beaten:
            front.append(i)
    return front


# --------------------------------------------------------------------------- figures


def tradeoff_figure(models: Sequence[dict], cost: str = "size_bytes", budget: Budget | None = None) -> go.Figure:
    """Quality against size (MB) or latency (ms); the Pareto front joined by a line."""
    rows = measured(models)
    key, higher = quality_key(models)
    scale = 1e6 if cost == "size_bytes" else 1.0
    label = "size on disk (MB)" if cost == "size_bytes" else "latency, one request (ms)"
    xs = [m[cost] / scale for m in rows]
    ys = [m[key] for m in rows]
    front = set(pareto_front(list(zip(xs, ys)), higher))
    colours = [
        OUT if m.get("fluent") is False else TEACHER if m["name"] == "teacher" else FRONT if i in front else OTHER
        for i, m in enumerate(rows)
    ]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers+text",
            text=[m["name"] for m in rows],
            textposition=_label_places(xs, ys),
            marker={"size": 12, "color": colours, "line": {"width": 1, "color": "#1f2937"}},
            name="models",
            hovertemplate="%{text}<br>%{x:.2f} | "
            + QUALITY_WORDS.get(key, key)
            + (" %{y:.1%}" if higher else " %{y:.4g}")
            + "<extra></extra>",
        )
    )
    ordered = sorted(front, key=lambda i: xs[i])
    fig.add_trace(
        go.Scatter(
            x=[xs[i] for i in ordered],
            y=[ys[i] for i in ordered],
            mode="lines",
            line={"color": FRONT, "dash": "dot"},
            name="best trade-offs (Pareto front)",
        )
    )
    limit = None if budget is None else budget.max_mb if cost == "size_bytes" else budget.max_ms
    if limit:
        fig.add_vline(x=limit, line_dash="dash", line_color="#dc2626", annotation_text="your budget")
    words = QUALITY_WORDS.get(key, key)
    if budget is not None and budget.min_quality is not None:
        said = f"{budget.min_quality:.0%}" if higher else f"{budget.min_quality:g}"
        fig.add_hline(
            y=budget.min_quality,
            line_dash="dash",
            line_color="#dc2626",
            annotation_text=f"your quality limit: {said}",
            annotation_position="top left",
        )
    _reference_lines(fig, models)
    if higher:  # a share: 0-100 %, as everywhere else in the studio
        fig.update_yaxes(range=[0, 1.05], tickformat=".0%")
    fig.update_layout(
        title=f"{words} vs {label}",
        xaxis_title=label,
        yaxis_title=words + ("" if higher else " (lower is better)"),
        template="plotly_white",
        height=420,
        margin={"t": 50, "l": 60, "r": 20, "b": 50},
    )
    return fig


BAR_METRICS = [
    ("quality", "quality", True),
    ("size_bytes", "smaller", False),
    ("latency_ms", "faster", False),
    ("throughput", "throughput", True),
    ("params", "fewer parameters", False),
]
"""(metric, bar label, higher is better). A lower-is-better metric is drawn as the teacher's over the model's,
so on every bar above 1 the model beats the teacher."""


def metric_bars(models: Sequence[dict]) -> go.Figure:
    """Each model against the teacher, grouped per metric, oriented so that higher is always better
    (1.0 = the same as the teacher)."""
    rows = measured(models)
    key, quality_higher = quality_key(models)
    teacher = next((m for m in rows if m["name"] == "teacher"), rows[0] if rows else None)
    fig = go.Figure()
    for m in rows:
        values = []
        for metric, _, higher in BAR_METRICS:
            if metric == "quality":
                metric, higher = key, quality_higher
            mine, base = m.get(metric), teacher.get(metric) if teacher else None
            values.append((mine / base if higher else base / mine) if base and mine else None)
        fig.add_trace(
            go.Bar(
                name=m["name"],
                x=[label for _, label, _ in BAR_METRICS],
                y=values,
                hovertemplate="%{x}: %{y:.2f}× the teacher<extra>" + m["name"] + "</extra>",
            )
        )
    fig.add_hline(y=1.0, line_dash="dot", line_color="#6b7280", annotation_text="the teacher")
    fig.update_layout(
        barmode="group",
        title="Against the teacher: higher is better on every bar",
        yaxis_title="× the teacher",
        template="plotly_white",
        height=420,
        margin={"t": 50, "l": 60, "r": 20, "b": 50},
    )
    return fig


def energy_figure(models: Sequence[dict], price_per_hour: float | None = None) -> go.Figure:
    """Energy per 1,000 answers of every model that has the figure (baselines too, in their own colour), with what
    the answers cost at ``price_per_hour``; the basis (measured or estimated) under the chart. A log scale when the
    figures span more than a hundredfold, as a linear baseline beside a teacher does."""
    rows = [m for m in models if m.get("status", "ok") == "ok" and m.get("energy_wh_per_1000")]
    values = [m["energy_wh_per_1000"] for m in rows]
    costs = [machine_cost(m["seconds_per_1000"], price_per_hour) if price_per_hour else None for m in rows]
    fig = go.Figure(
        go.Bar(
            x=[m["name"] for m in rows],
            y=values,
            marker_color=[BASELINE if m["name"] in BASELINES else TEACHER if m["name"] == "teacher" else FRONT for m in rows],
            text=[wh_text(v) + (f" · {money(c)}" if c is not None else "") for v, c in zip(values, costs)],
            textposition="outside",
            customdata=[textwrap.fill(m.get("energy_basis") or "basis not recorded", 80).replace("\n", "<br>") for m in rows],
            hovertemplate="%{x}: %{text} per 1,000 answers<br>%{customdata}<extra></extra>",
        )
    )
    bases = {m.get("energy_basis") or "" for m in rows}
    if len(bases) == 1 and (basis := bases.pop()):
        fig.add_annotation(
            text="<br>".join(textwrap.wrap(basis, 110)),
            xref="paper",
            yref="paper",
            x=0,
            y=-0.18,
            xanchor="left",
            yanchor="top",
            showarrow=False,
            align="left",
            font={"size": 11, "color": TEACHER},
        )
    spread = max(values) / min(values) if values else 1.0
    priced = f", cost at {money(price_per_hour)} an hour" if price_per_hour else ""
    fig.update_layout(
        title=f"Energy per 1,000 answers{priced}",
        yaxis_title="Wh per 1,000 answers" + (" (log scale)" if spread > 100 else ""),
        yaxis_type="log" if spread > 100 else "linear",
        template="plotly_white",
        height=460,
        margin={"t": 50, "l": 60, "r": 20, "b": 150},
    )
    return fig


def _label_places(xs: Sequence[float], ys: Sequence[float]) -> list[str]:
    """Where each point's name goes: neighbours (by size, then quality) alternate above and below, so names of
    close points do not print over each other."""
    places = ["top center", "bottom center", "top right", "bottom left"]
    order = sorted(range(len(xs)), key=lambda i: (xs[i], ys[i]))
    return [places[order.index(i) % len(places)] for i in range(len(xs))]


def loss_figure(curve: Sequence[tuple[str, int, float]]) -> go.Figure:
    """Training loss per step, one line per stage (teacher fine-tune, student KD, heal)."""
    fig = go.Figure()
    for stage in dict.fromkeys(stage for stage, _, _ in curve):
        points = [(step, value) for s, step, value in curve if s == stage]
        fig.add_trace(go.Scatter(x=[p[0] for p in points], y=[p[1] for p in points], mode="lines", name=stage))
    fig.update_layout(
        title="Training loss",
        xaxis_title="step",
        yaxis_title="loss",
        template="plotly_white",
        height=360,
        margin={"t": 50, "l": 60, "r": 20, "b": 50},
    )
    return fig


def rounds_figure(rounds: Sequence) -> go.Figure:
    """Validation macro-F1 after each round of labelling (studio.jobs.rounds.Round): the student's line, the
    teacher's when it was trained, and the student's test-split score dotted (a small validation split can stay
    flat while the test score moves); x is the labelled texts the round learnt from."""
    fig = go.Figure()
    names = [f"round {i} ({r.labels:,} labels)" for i, r in enumerate(rounds, 1)]
    last = rounds[-1] if rounds else None
    lines = {
        "student": ("student, validation", "solid"),
        "teacher": ("teacher, validation", "solid"),
        "student_test": (f"student, test split ({last.test_texts if last else 0} texts)", "dot"),
    }
    for who, (name, dash) in lines.items():
        points = [(x, getattr(r, who)) for x, r in zip(names, rounds) if getattr(r, who) is not None]
        if points:
            fig.add_trace(
                go.Scatter(
                    x=[p[0] for p in points],
                    y=[p[1] for p in points],
                    mode="lines+markers+text",
                    text=[f"{p[1]:.3f}" for p in points],
                    textposition="top center",
                    name=name,
                    line={"dash": dash},
                )
            )
    fig.update_layout(
        title=f"Macro-F1 on the validation split ({last.validation_texts if last else 0} texts) after each round",
        yaxis_title="macro-F1",
        yaxis_range=[0, 1.05],
        template="plotly_white",
        height=340,
        margin={"t": 50, "l": 60, "r": 20, "b": 50},
    )
    return fig


def confusion_figure(model: dict, labels: Sequence[str]) -> go.Figure:
    """Test examples by true label (rows) and the label the model gave (columns); colour is the share of
    each true label, so a rare label's mistakes show as clearly as a common one's."""
    counts = model["confusion"]
    shares = [[c / max(1, sum(row)) for c in row] for row in counts]
    fig = go.Figure(
        go.Heatmap(
            z=shares,
            x=list(labels),
            y=list(labels),
            text=counts,
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar={"title": "share of row"},
            hovertemplate="true %{y}, answered %{x}: %{text}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"{model['name']}: what it answers for each true label",
        xaxis_title="answered",
        yaxis_title="true label",
        yaxis_autorange="reversed",
        template="plotly_white",
        height=420,
        margin={"t": 50, "l": 100, "r": 20, "b": 80},
    )
    return fig


def class_balance_figure(label_counts: dict[str, int]) -> go.Figure:
    """How many examples each label has: a rare label is learned poorly."""
    labels = sorted(label_counts, key=label_counts.get, reverse=True)
    fig = go.Figure(go.Bar(x=labels, y=[label_counts[k] for k in labels], marker_color=FRONT))
    fig.update_layout(
        title="Examples per label",
        yaxis_title="examples",
        template="plotly_white",
        height=320,
        margin={"t": 50, "l": 60, "r": 20, "b": 80},
    )
    return fig


# --------------------------------------------------------------------------- the budget


@dataclass
class Budget:
    """Limits the user sets; None means no limit."""

    max_mb: float | None = None
    max_ms: float | None = None
    min_quality: float | None = None
    """Macro-F1 at least this (classification), or ROUGE-L at least this (causal LM; perplexity at most this
    for runs measured before answers were judged)."""
    price_per_hour: float | None = None
    """Not a limit: what an hour of the machine costs (USD), so the advice can say what 1,000 answers cost."""


@dataclass
class Recommendation:
    name: str | None
    reason: str
    fits: list[str] = field(default_factory=list)
    misses: dict[str, str] = field(default_factory=dict)
    """Each model that does not fit, and the first limit it breaks, in words."""


def recommend(models: Sequence[dict], budget: Budget) -> Recommendation:
    """The best-quality model within the budget (ties go to the smaller), and why, in plain words. A classifier
    that does not beat the TF-IDF baseline is never recommended, whatever the budget."""
    rows = [m for m in measured(models) if m["name"] != BASE_TEACHER]
    if not rows:
        return Recommendation(None, "Nothing has been measured yet: run a distillation (and compressions) first.")
    key, higher = quality_key(rows)
    words = QUALITY_WORDS.get(key, key)
    floor = baseline_scores(models).get(TFIDF)
    misses = {m["name"]: miss for m in rows if (miss := _miss(m, budget, key, higher, floor))}
    fits = [m for m in rows if m["name"] not in misses]
    if not fits:
        if floor is not None and all(m[key] <= floor for m in rows):
            return Recommendation(
                None,
                f"No model beats the TF-IDF baseline (macro-F1 {floor:.3f}), so none is "
                "recommended: a linear model fitted in a second does as well. Try another teacher "
                "(smollm2-135m reads text differently from minilm-l6, and with only its head fitted "
                "costs minutes on a CPU; which is better depends on your data), more labelled "
                "data, or more training steps; or export the TF-IDF baseline itself (step 6: "
                "tfidf-baseline).",
                [],
                misses,
            )
        if all(m.get("fluent") is False for m in rows):
            return Recommendation(
                None,
                "No text generator writes usable answers, so none is recommended: "
                + "; ".join(f"{name} {why}" for name, why in misses.items())
                + ". Read the answers "
                "below; try a larger student (more layers), more training data, or the teacher "
                "itself.",
                [],
                misses,
            )
        best = max(rows, key=lambda m: m[key] if higher else -m[key])
        if short := _short_of_quality(best, budget, key, higher):
            return Recommendation(  # quality is the limit no model meets: a smaller variant would not help
                None,
                f"No model reaches the quality you asked for. The best, {best['name']}, {short}. "
                "Lower that limit, or raise quality: the Best quality preset, more labelled data, or another teacher.",
                [],
                misses,
            )
        closest = min(rows, key=lambda m: m["size_bytes"])
        return Recommendation(
            None,
            "No model fits this budget. The smallest, "
            f"{closest['name']}, {misses[closest['name']]}. Loosen a limit, or make a smaller "
            "variant (pruning, int8).",
            [],
            misses,
        )
    best = max(fits, key=lambda m: ((m[key] if higher else -m[key]), -m["size_bytes"]))
    teacher = next((m for m in rows if m["name"] == "teacher"), None)
    said = [
        f"{words} {best[key]:.4g}" + (f" (teacher {teacher[key]:.4g})" if teacher and best is not teacher else ""),
        f"{best['size_bytes'] / 1e6:.1f} MB",
        f"{best['latency_ms']:.2f} ms per request",
    ]
    if best.get("energy_wh_per_1000") is not None:
        said.append(thousand_answers(best, budget.price_per_hour))
    reason = (
        f"{best['name']} is the {'best' if higher else 'lowest-perplexity'} model that fits your budget: " + ", ".join(said) + "."
    )
    if floor is not None:
        reason += f" It beats the TF-IDF baseline ({floor:.3f})."
    if len(fits) > 1:
        reason += f" {len(fits) - 1} other model(s) fit too, with lower quality or the same quality at a larger size."
    unfluent = [name for name, why in misses.items() if why.startswith("fails the fluency")]
    if unfluent:
        reason += (
            f" Not {', '.join(unfluent)}: {'its' if len(unfluent) == 1 else 'their'} answers fail the fluency "
            "check, whatever the other figures say (read the answers below)."
        )
    return Recommendation(best["name"], reason, [m["name"] for m in fits], misses)


def thousand_answers(m: dict, price_per_hour: float | None = None) -> str:
    """'1,000 answers use about 0.05 Wh (estimated) and cost $0.0003 at $0.10 an hour'."""
    said = (m.get("energy_basis") or "estimated").split(":")[0]  # 'measured', 'partly measured', 'estimated, not measured'
    words = f"1,000 answers use about {wh_text(m['energy_wh_per_1000'])} ({said})"
    if price_per_hour and m.get("seconds_per_1000"):
        words += f" and cost {money(machine_cost(m['seconds_per_1000'], price_per_hour))} at {money(price_per_hour)} an hour"
    return words


def _miss(m: dict, budget: Budget, key: str, higher: bool, floor: float | None = None) -> str | None:
    if m.get("fluent") is False:
        return f"fails the fluency check ({m.get('fluency_note') or 'its answers are not sentences'})"
    if floor is not None and m[key] <= floor:
        return f"does not beat the TF-IDF baseline (macro-F1 {m[key]:.3f}, baseline {floor:.3f})"
    if budget.max_mb is not None and m["size_bytes"] / 1e6 > budget.max_mb:
        return f"is {m['size_bytes'] / 1e6:.1f} MB, over {budget.max_mb:g} MB"
    if budget.max_ms is not None and m["latency_ms"] > budget.max_ms:
        return f"takes {m['latency_ms']:.2f} ms, over {budget.max_ms:g} ms"
    return _short_of_quality(m, budget, key, higher)


def _short_of_quality(m: dict, budget: Budget, key: str, higher: bool) -> str | None:
    """How ``m`` misses the quality limit, in words; None when it meets it (or there is none)."""
    if budget.min_quality is None or (m[key] >= budget.min_quality if higher else m[key] <= budget.min_quality):
        return None
    if key in ("macro_f1", "rouge_l"):
        return f"has {QUALITY_WORDS[key]} {m[key]:.1%}, below the {budget.min_quality:.0%} you asked for"
    return f"has {key} {m[key]:.4g}, {'below' if higher else 'above'} {budget.min_quality:g}"
