"""Step 5, Compare: teacher, student and every variant of a run, measured the same way; Plotly charts
(Pareto front marked), a sortable table, and the best model within the user's budget, with reasons."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from storage import jobs as job_rows
from storage import records
from studio.charts import Budget, loss_figure, metric_bars, quality_key, recommend, tradeoff_figure
from studio.ui.compress_step import runs_choice
from studio.ui.context import UIContext, error_box, message_of

COLUMNS = [("name", "model"), ("status", "status"), ("quality", "quality"), ("size_bytes", "MB"),
           ("latency_ms", "ms / request"), ("throughput", "per second"), ("params", "parameters"),
           ("agreement", "agrees with teacher")]


@dataclass
class CompareTab:
    run: gr.Dropdown
    max_mb: gr.Number
    max_ms: gr.Number
    min_quality: gr.Number
    advice: gr.Markdown
    table: gr.Dataframe
    size_chart: gr.Plot
    latency_chart: gr.Plot
    bars: gr.Plot
    curve: gr.Plot


def compare_rows(ctx: UIContext, viewer, run_id: int) -> list[dict]:
    """Teacher, student and the variants made from this run, each with its latest scores."""
    with ctx.storage.db.session() as s:
        family = job_rows.descendants(s, job_rows.get(s, viewer, run_id).id)
        rows = []
        for job_id in family:
            if job_rows.get(s, viewer, job_id).kind == "evaluate":
                continue
            for v in records.variants_of(s, viewer, job_id):
                rows.append({"name": v.name, "status": v.status, **records.scores_of(s, v.id)})
    return rows


def table_rows(models: list[dict]) -> list[list]:
    key, _ = quality_key(models) if models else ("accuracy", True)
    out = []
    for m in models:
        row = []
        for field, _ in COLUMNS:
            value = m.get(key if field == "quality" else field)
            if field == "size_bytes" and value is not None:
                value = round(value / 1e6, 2)
            row.append("" if value is None else round(value, 4) if isinstance(value, float) else value)
        out.append(row)
    return out


def comparison(ctx: UIContext, viewer, run_id, max_mb, max_ms, min_quality):
    if not run_id:
        return "*Finish a distillation first (step 3).*", [], None, None, None, None
    try:
        models = compare_rows(ctx, viewer, int(run_id))
        with ctx.storage.db.session() as s:
            curve = records.training_curve(s, viewer, int(run_id))
    except Exception as err:  # noqa: BLE001
        return error_box(message_of(err)), [], None, None, None, None
    budget = Budget(max_mb or None, max_ms or None, min_quality or None)
    advice = recommend(models, budget)
    words = f"**Recommended: {advice.name}.** {advice.reason}" if advice.name else f"**{advice.reason}**"
    if advice.misses:
        words += "\n\n" + "\n".join(f"- {name} {why}" for name, why in advice.misses.items())
    return (words, table_rows(models), tradeoff_figure(models, "size_bytes", budget),
            tradeoff_figure(models, "latency_ms", budget), metric_bars(models), loss_figure(curve) if curve else None)


def build_compare_tab(ctx: UIContext) -> CompareTab:
    gr.Markdown("### 5. Compare\nQuality against size and speed. Points on the dotted line are the best "
                "trade-offs: nothing else is both smaller (or faster) and better.")
    run = gr.Dropdown([], label="Distillation run", interactive=True)
    with gr.Row():
        max_mb = gr.Number(label="Largest size you accept (MB; 0 = no limit)", value=0, minimum=0)
        max_ms = gr.Number(label="Slowest answer you accept (ms; 0 = no limit)", value=0, minimum=0)
        min_quality = gr.Number(label="Lowest accuracy (or highest perplexity) you accept; 0 = no limit", value=0,
                                minimum=0)
    advice = gr.Markdown()
    table = gr.Dataframe(headers=[label for _, label in COLUMNS], interactive=False, label="All models (click a "
                         "column to sort)")
    with gr.Row():
        size_chart = gr.Plot(label="Quality vs size")
        latency_chart = gr.Plot(label="Quality vs latency")
    with gr.Row():
        bars = gr.Plot(label="Relative to the teacher")
        curve = gr.Plot(label="Training curve")

    def refresh_runs(request: gr.Request = None):
        return runs_choice(ctx, ctx.viewer(request))

    def show(run_id, mb, ms, quality, request: gr.Request = None):
        return comparison(ctx, ctx.viewer(request), run_id, mb, ms, quality)

    inputs = [run, max_mb, max_ms, min_quality]
    outputs = [advice, table, size_chart, latency_chart, bars, curve]
    run.focus(refresh_runs, None, [run])
    run.change(show, inputs, outputs, api_name="compare")
    for source in (max_mb.change, max_ms.change, min_quality.change):
        source(show, inputs, outputs)
    return CompareTab(run, max_mb, max_ms, min_quality, advice, table, size_chart, latency_chart, bars, curve)
