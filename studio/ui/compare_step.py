"""Step 5, Compare: teacher, student and every variant of a run, measured the same way; Plotly charts
(Pareto front marked), a sortable table, the energy and cost of 1,000 answers from each (and the energy the training
used), and the best model within the user's budget, with reasons."""

from __future__ import annotations

import json
from dataclasses import dataclass

import gradio as gr

from storage import jobs as job_rows
from storage import records
from studio.answers import NEW_TOKENS
from studio.baselines import TFIDF
from studio.charts import (
    Budget,
    confusion_figure,
    energy_figure,
    loss_figure,
    metric_bars,
    quality_key,
    recommend,
    tradeoff_figure,
)
from studio.energy import PRICE_PER_HOUR, machine_cost, money, wh_text
from studio.export.card import answers_table
from studio.metrics import BY_KEY
from studio.ui.compress_step import runs_choice
from studio.ui.context import UIContext, error_box, shows_errors
from studio.ui.export_step import exportable_models
from studio.ui.try_box import build_try_box

COLUMNS = [
    ("name", "model"),
    ("status", "status"),
    ("quality", "macro-F1 (or ROUGE-L of answers)"),
    *[
        (key, BY_KEY[key].title + {"size_bytes": " (MB)", "energy_wh_per_1000": " (Wh)"}.get(key, ""))
        for key in ("accuracy", "size_bytes", "latency_ms", "throughput", "params", "agreement", "energy_wh_per_1000")
    ],
    ("cost", "cost per 1,000 answers (USD)"),
]


@dataclass
class CompareTab:
    run: gr.Dropdown
    max_mb: gr.Number
    max_ms: gr.Number
    min_quality: gr.Number
    price: gr.Number
    advice: gr.Markdown
    table: gr.Dataframe
    size_chart: gr.Plot
    latency_chart: gr.Plot
    bars: gr.Plot
    curve: gr.Plot
    energy_chart: gr.Plot
    energy_note: gr.Markdown
    closer: gr.Dropdown
    confusion: gr.Plot
    per_class: gr.Dataframe
    answers: gr.Markdown
    recommended: gr.State
    """The model recommended within the budget (None when none fits)."""
    export_this: gr.Button


def compare_rows(ctx: UIContext, viewer, run_id: int) -> list[dict]:
    """Teacher, student and the variants made from this run, each with its latest scores."""
    with ctx.storage.db.session() as s:
        return [m.with_scores() for m in records.run_models(s, viewer, run_id)]


def run_report(ctx: UIContext, viewer, run_id: int) -> dict:
    """The run's newest measurement (compare.json after compress or evaluate, else eval.json): per-class
    scores, confusion matrices and warnings, which the database keeps no copy of."""
    with ctx.storage.db.session() as s:
        folder = job_rows.get(s, viewer, run_id).folder
    for name in ("compare.json", "eval.json"):
        path = ctx.storage.store.local(f"{folder}/{name}")  # that file only, from the shared store if there is one
        if path.is_file():
            return json.loads(path.read_text())
    return {}


def with_judgement(models: list[dict], report: dict) -> list[dict]:
    """The database keeps numbers only: whether a generator's answers passed the fluency check (and why not), and
    what a model's energy figure rests on, come from the run's report."""
    judged = {m["name"]: m for m in report.get("models", [])}
    words = ("fluent", "fluency_note", "energy_basis")
    return [{**m, **{k: judged[m["name"]][k] for k in words if k in judged.get(m["name"], {})}} for m in models]


def answers_markdown(report: dict, count: int = 5) -> str:
    """Text generators: each model's answers to the same held-out prompts, side by side with the reference."""

    book = report.get("answers")
    if not book or not book.get("prompts"):
        return ""
    return "\n".join(
        [
            "#### What each model writes",
            f"Greedy answers (up to {NEW_TOKENS} tokens, as the export answers) to the first "
            f"{min(count, len(book['prompts']))} held-out prompts. Read them before you trust a number: a "
            "model marked [reads as word salad] or [repeats itself] is not recommended whatever its scores."
            + (
                f" {book['skipped_repeats']} test prompt(s) that nearly repeat a training one were left out."
                if book.get("skipped_repeats")
                else ""
            ),
            "",
            *answers_table(book, list(book["by_model"]), count),
        ]
    )


def training_energy_text(report: dict, price_per_hour: float | None = None) -> str:
    """'Training this run used about 12.3 Wh (estimated, not measured: ...)', and what its machine time cost."""
    used = report.get("training_energy")
    if not used:
        return ""
    cost = f", about {money(machine_cost(used['seconds'], price_per_hour))} of machine time" if price_per_hour else ""
    return f"Training this run used about {wh_text(used['wh'])} in {used['seconds'] / 60:.1f} minutes{cost} ({used['basis']})."


def warnings_text(report: dict) -> str:
    said = [f"- ⚠️ **{m['name']}** {w}." for m in report.get("models", []) for w in m.get("warnings") or []]
    return ("\n\n**Before you trust these numbers:**\n" + "\n".join(said)) if said else ""


def closer_look(report: dict, name: str | None) -> tuple[object | None, list[list]]:
    """(confusion heatmap, per-class table) of one model of the report."""
    model = next((m for m in report.get("models", []) if m["name"] == name and m.get("confusion")), None)
    if model is None:
        return None, []
    rows = [
        [label, round(v["precision"], 3), round(v["recall"], 3), round(v["f1"], 3), v["support"]]
        for label, v in model["per_class"].items()
    ]
    return confusion_figure(model, report.get("labels") or list(model["per_class"])), rows


SHARES = {"quality", "accuracy", "agreement"}
"""Columns that are shares of the test split: shown as percentages."""


def table_rows(models: list[dict], recommended: str | None = None, price_per_hour: float | None = None) -> list[list]:
    """One row a model, in the units people read: percentages, MB, milliseconds, millions of parameters, Wh and USD
    for 1,000 answers (at ``price_per_hour``); the recommended model marked."""
    key, higher = quality_key(models) if models else ("macro_f1", True)
    out = []
    for m in models:
        row = []
        for field, _ in COLUMNS:
            value = m.get(key if field == "quality" else field)
            if field == "cost" and price_per_hour and m.get("seconds_per_1000"):
                value = machine_cost(m["seconds_per_1000"], price_per_hour)
            if field == "name":
                value = f"★ {value} (recommended)" if value == recommended else value
            elif value is None or isinstance(value, str):
                value = value or ""
            elif field in SHARES and (higher or field != "quality"):
                value = f"{value:.1%}"
            elif field == "size_bytes":
                value = round(value / 1e6, 1)
            elif field == "params":
                value = f"{value / 1e6:.1f} M" if value >= 1e5 else f"{value / 1e3:.0f} k" if value >= 1e3 else int(value)
            elif field == "throughput":
                value = round(value)
            elif field in ("energy_wh_per_1000", "cost"):
                value = float(f"{value:.3g}")  # tiny and large alike, still a number to sort by
            else:
                value = round(value, 2)
            row.append(value)
        out.append(row)
    return out


def quality_floor(typed: float | None, key: str) -> float | None:
    """The lowest quality the user accepts, as the scores store it: 85 (or 0.85) means 85 % for a share."""
    if not typed:
        return None
    return typed / 100 if key in ("macro_f1", "rouge_l") and typed > 1 else typed


@shows_errors(
    lambda message: (
        error_box(message),
        [],
        None,
        None,
        None,
        None,
        None,
        "",
        gr.update(choices=[], value=None),
        None,
        [],
        "",
        None,
        gr.update(visible=False),
    )
)
def comparison(ctx: UIContext, viewer, run_id, max_mb, max_ms, min_quality, price=PRICE_PER_HOUR):
    nothing = (None, None, None, None, None, "", gr.update(choices=[], value=None), None, [], "", None, gr.update(visible=False))
    if not run_id:
        return "*Finish a distillation first (step 3).*", [], *nothing
    report = run_report(ctx, viewer, int(run_id))
    models = with_judgement(compare_rows(ctx, viewer, int(run_id)), report)
    with ctx.storage.db.session() as s:
        curve = records.training_curve(s, viewer, int(run_id))
    floor = quality_floor(min_quality, quality_key(models)[0] if models else "")
    budget = Budget(max_mb or None, max_ms or None, floor, price or None)
    advice = recommend(models, budget)
    words = f"**Recommended: {advice.name}.** {advice.reason}" if advice.name else f"**{advice.reason}**"
    if advice.misses:
        words += "\n\n" + "\n".join(f"- {name} {why}" for name, why in advice.misses.items())
    words += warnings_text(report)
    looked = [m["name"] for m in report.get("models", []) if m.get("confusion")]
    chosen = advice.name if advice.name in looked else ("student" if "student" in looked else None)
    heatmap, per_class = closer_look(report, chosen)
    return (
        words,
        table_rows(models, advice.name, budget.price_per_hour),
        tradeoff_figure(models, "size_bytes", budget),
        tradeoff_figure(models, "latency_ms", budget),
        metric_bars(models),
        loss_figure(curve) if curve else None,
        energy_figure(models, budget.price_per_hour) if any(m.get("energy_wh_per_1000") for m in models) else None,
        training_energy_text(report, budget.price_per_hour),
        gr.update(choices=looked, value=chosen),
        heatmap,
        per_class,
        answers_markdown(report),
        advice.name,
        gr.update(visible=bool(advice.name), value=f"Export {advice.name}, the recommended model (step 6)"),
    )


def build_compare_tab(ctx: UIContext) -> CompareTab:
    gr.Markdown(
        "### 5. Compare\nQuality against size and speed. Points on the dotted line are the best "
        "trade-offs: nothing else is both smaller (or faster) and better."
    )
    run = gr.Dropdown([], label="Distillation run", interactive=True)
    with gr.Row():
        max_mb = gr.Number(label="Largest size you accept (MB; 0 = no limit)", value=0, minimum=0)
        max_ms = gr.Number(label="Slowest answer you accept (ms; 0 = no limit)", value=0, minimum=0)
        min_quality = gr.Number(
            label="Lowest quality you accept (%: macro-F1, or ROUGE-L for text generators; 0 = no limit)", value=0, minimum=0
        )
        price = gr.Number(
            label=f"What an hour of the machine costs you (USD; {PRICE_PER_HOUR:.2f} is about a small CPU server)",
            value=PRICE_PER_HOUR,
            minimum=0,
        )
    advice = gr.Markdown()
    export_this = gr.Button("Export the recommended model (step 6)", variant="primary", visible=False)
    recommended = gr.State(None)
    tried_model = gr.Dropdown(["student", "teacher"], value="student", label="Model to try", interactive=True)
    build_try_box(ctx, run, tried_model)
    table = gr.Dataframe(headers=[label for _, label in COLUMNS], interactive=False, label="All models (click a column to sort)")
    with gr.Row():
        size_chart = gr.Plot(label="Quality vs size")
        latency_chart = gr.Plot(label="Quality vs latency")
    with gr.Row():
        bars = gr.Plot(label="Relative to the teacher")
        curve = gr.Plot(label="Training curve")
    energy_chart = gr.Plot(label="Energy and cost per 1,000 answers")
    energy_note = gr.Markdown()
    gr.Markdown(
        "#### A closer look at one model\nWhich labels it gets right, and what it answers instead. "
        "Macro-F1 is the average of the per-label F1 below, so a rare label counts as much as a common one."
    )
    closer = gr.Dropdown([], label="Model", interactive=True)
    with gr.Row():
        confusion = gr.Plot(label="Confusion matrix (test split)")
        per_class = gr.Dataframe(
            headers=["label", "precision", "recall", "F1", "test examples"], interactive=False, label="Label by label"
        )
    answers = gr.Markdown()

    def refresh_runs(request: gr.Request = None):
        return runs_choice(ctx, ctx.viewer(request))

    def show(run_id, mb, ms, quality, price, request: gr.Request = None):
        return comparison(ctx, ctx.viewer(request), run_id, mb, ms, quality, price)

    def warned(message: str) -> tuple[None, list]:
        gr.Warning(message)
        return None, []

    @shows_errors(warned)
    def look(run_id, name, request: gr.Request = None):
        if not run_id:
            return None, []
        return closer_look(run_report(ctx, ctx.viewer(request), int(run_id)), name)

    inputs = [run, max_mb, max_ms, min_quality, price]
    outputs = [
        advice,
        table,
        size_chart,
        latency_chart,
        bars,
        curve,
        energy_chart,
        energy_note,
        closer,
        confusion,
        per_class,
        answers,
        recommended,
        export_this,
    ]
    closer.input(look, [run, closer], [confusion, per_class])
    run.focus(refresh_runs, None, [run])
    run.change(show, inputs, outputs, api_name="compare")

    @shows_errors(lambda message: gr.update())
    def triable(run_id, request: gr.Request = None):
        names = [name for _, name in exportable_models(ctx, ctx.viewer(request), run_id) if name != TFIDF]
        return gr.update(choices=names, value="student" if "student" in names else None)

    run.change(triable, [run], [tried_model])
    for source in (max_mb.change, max_ms.change, min_quality.change, price.change):
        source(show, inputs, outputs)
    return CompareTab(*inputs, *outputs)  # the dataclass lists them in this order
