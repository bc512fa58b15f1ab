"""Step 4, Compress: tick methods; each becomes its own variant job on the chosen finished run."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from storage import jobs as job_rows
from storage.tables import JobStatus
from studio.jobs import service
from studio.ui.context import UIContext, error_box, message_of

CHOICES = {
    "int8 — 4× smaller, runs on any CPU (ONNX Runtime)": ("int8", "int8"),
    "bfloat16 — half the size, same answers; fast on CPUs with bfloat16 instructions": ("bf16", "bf16"),
    "NF4 4-bit — bitsandbytes (best on a GPU)": ("nf4", "bnb-nf4"),
    "Prune 30% of heads and neurons, then heal": ("slim-30", "prune-heads:fraction=0.3+prune-neurons:fraction=0.3+heal"),
    "Prune 50% of heads and neurons, then heal, then int8": (
        "slim-50-int8",
        "prune-heads:fraction=0.5+prune-neurons:fraction=0.5+heal:epochs=3+int8",
    ),
    "Zero the smallest 50% of weights, then heal": ("sparse-50", "magnitude:sparsity=0.5+heal"),
    "Remove one layer, then heal": ("minus-1-layer", "prune-layers:count=1+heal"),
}


@dataclass
class CompressTab:
    run: gr.Dropdown
    methods: gr.CheckboxGroup
    start: gr.Button
    why_not: gr.Markdown
    status: gr.Markdown


def finished_runs(ctx: UIContext, viewer) -> list[tuple[str, int]]:
    with ctx.storage.db.session() as s:
        jobs = job_rows.list_jobs(s, viewer, limit=100, kind="distill", status=JobStatus.DONE)
    return [(f"job {j.id}: {j.title}", j.id) for j in jobs]


def runs_choice(ctx: UIContext, viewer) -> dict:
    """A dropdown update listing the finished runs, the newest picked."""
    runs = finished_runs(ctx, viewer)
    return gr.update(choices=runs, value=runs[0][1] if runs else None)


def start_compress(ctx: UIContext, viewer, run_id: int | None, picked: list[str]) -> str:
    if not run_id:
        return error_box("Choose a finished distillation first (step 3).")
    if not picked:
        return error_box("Tick at least one method.")
    made, problems = [], []
    for label in picked:
        name, recipe = CHOICES[label]
        try:
            name = service.free_name(ctx.storage, viewer, int(run_id), name)  # made before: 'int8-2', never a dead end
            made.append(
                service.submit(
                    ctx.storage,
                    viewer,
                    "compress",
                    {"recipes": [[name, recipe]]},
                    parent_id=int(run_id),
                    title=f"{name} of job {run_id}",
                )
            )
        except Exception as err:  # noqa: BLE001
            problems.append(f"{name}: {message_of(err)}")
    said = f"Queued variant job(s) {', '.join(map(str, made))}; follow them in History." if made else ""
    return "\n\n".join([said] + [error_box(p) for p in problems]).strip()


def build_compress_tab(ctx: UIContext) -> CompressTab:
    gr.Markdown(
        "### 4. Compress\nMake smaller, faster variants of a finished student. Each is measured the "
        "same way as the teacher, so step 5 can compare them."
    )
    run = gr.Dropdown([], label="Finished distillation", interactive=True)
    methods = gr.CheckboxGroup(list(CHOICES), label="Methods (each becomes one variant)")
    why_not = gr.Markdown("*Finish a distillation first (step 3).*")
    start = gr.Button("Make variants", variant="primary", interactive=False)
    status = gr.Markdown()

    def refresh_runs(request: gr.Request = None):
        return runs_choice(ctx, ctx.viewer(request))

    def readiness(run_id, picked):
        problem = None if run_id else "Finish a distillation first (step 3)."
        problem = problem or (None if picked else "Tick at least one method.")
        return gr.update(interactive=problem is None), "" if problem is None else f"*{problem}*"

    def on_start(run_id, picked, request: gr.Request = None):
        return start_compress(ctx, ctx.viewer(request), run_id, picked)

    run.focus(refresh_runs, None, [run])
    for source in (run.change, methods.change):
        source(readiness, [run, methods], [start, why_not])
    start.click(on_start, [run, methods], [status])
    return CompressTab(run, methods, start, why_not, status)
