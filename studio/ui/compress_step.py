"""Step 4, Compress: tick methods; each becomes its own variant job on the chosen finished run."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from storage import jobs as job_rows
from storage import records
from storage.errors import NotFoundError
from storage.tables import JobStatus
from studio.jobs import service
from studio.outcome import outcome_lines
from studio.ui.context import UIContext, error_box, message_of, shows_errors

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
    made: gr.Markdown
    """A card per variant of the chosen run: waiting, under way, or what it came to."""
    timer: gr.Timer
    """Ticks only while a variant of the chosen run is still being made."""
    next_steps: dict[str, gr.Button]


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
    try:  # heals and measuring run in as many processes as the run itself trained in
        with ctx.storage.db.session() as s:
            processes = int((job_rows.get(s, viewer, int(run_id)).config.get("distill") or {}).get("processes") or 0)
    except NotFoundError as err:  # not the caller's run
        return error_box(message_of(err))
    for label in picked:
        name, recipe = CHOICES[label]
        try:
            name = service.free_name(ctx.storage, viewer, int(run_id), name)  # made before: 'int8-2', never a dead end
            made.append(
                service.submit(
                    ctx.storage,
                    viewer,
                    "compress",
                    {"recipes": [[name, recipe]], "processes": processes},
                    parent_id=int(run_id),
                    title=f"{name} of job {run_id}",
                )
            )
        except Exception as err:  # noqa: BLE001
            problems.append(f"{name}: {message_of(err)}")
    said = f"Queued variant job(s) {', '.join(map(str, made))}; each gets its card below when it is done." if made else ""
    return "\n\n".join([said] + [error_box(p) for p in problems]).strip()


@shows_errors(lambda message: (error_box(message), False))
def variant_cards(ctx: UIContext, viewer, run_id: int | None) -> tuple[str, bool]:
    """(a card per variant job of the run, in plain words; whether one is still waiting or under way)."""
    if not run_id:
        return "", False
    with ctx.storage.db.session() as s:
        made = records.jobs_made_from(s, viewer, int(run_id))
        ahead = {j.id: job_rows.jobs_ahead(s, j) for j in made if j.status == JobStatus.QUEUED}
        rows = records.run_models(s, viewer, int(run_id))
    models = [m.with_scores() for m in rows]
    by_job: dict[int, list[str]] = {}
    for m in rows:
        by_job.setdefault(m.job_id, []).append(m.name)
    cards = [_card(job, ahead.get(job.id, 0), by_job.get(job.id, []), models) for job in made]
    pending = any(j.status in (JobStatus.QUEUED, JobStatus.RUNNING) for j in made)
    if not cards:
        return "", pending
    return "### Your variants\n" + "\n\n".join(cards), pending


def _card(job, ahead: int, names: list[str], models: list[dict]) -> str:
    """One variant job: where it is, or each variant it made beside the teacher."""
    title = f"**{job.title or f'job {job.id}'}** (job {job.id})"
    if job.status == JobStatus.QUEUED:
        return f"{title}: waiting for the worker" + (f", {ahead} job(s) ahead of it." if ahead else ".")
    if job.status == JobStatus.RUNNING:
        return f"{title}: {job.progress:.0%} — {job.step}"
    if job.status in (JobStatus.FAILED, JobStatus.CANCELLED):
        return f"{title}: {job.status}." + (f"\n\n{error_box(job.error)}" if job.error else "")
    said = []
    for name in names:
        lines = outcome_lines(models, name)
        row = next((m for m in models if m["name"] == name), {})
        if lines:
            said.append(f"**{name}** (job {job.id})\n" + "\n".join(f"- {line}" for line in lines))
        else:
            said.append(
                f"**{name}** could not be made or measured on this machine ({row.get('status', 'no scores')}); "
                "History has the reason."
            )
    return "\n\n".join(said) or f"{title}: done, but it recorded no variant."


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
    made = gr.Markdown(elem_id="variant-cards")
    with gr.Row(visible=False) as next_row:
        to_compare = gr.Button("Compare every model (step 5)", size="sm")
        to_export = gr.Button("Export a model (step 6)", size="sm")
    timer = gr.Timer(3, active=False)

    def refresh_runs(request: gr.Request = None):
        return runs_choice(ctx, ctx.viewer(request))

    def readiness(run_id, picked):
        problem = None if run_id else "Finish a distillation first (step 3)."
        problem = problem or (None if picked else "Tick at least one method.")
        return gr.update(interactive=problem is None), "" if problem is None else f"*{problem}*"

    def on_start(run_id, picked, request: gr.Request = None):
        return start_compress(ctx, ctx.viewer(request), run_id, picked)

    def show_cards(run_id, request: gr.Request = None):
        cards, pending = variant_cards(ctx, ctx.viewer(request), run_id)
        return cards, gr.update(visible=bool(cards)), gr.Timer(active=pending)

    shown = [made, next_row, timer]
    run.focus(refresh_runs, None, [run])
    for source in (run.change, methods.change):
        source(readiness, [run, methods], [start, why_not])
    run.change(show_cards, [run], shown)
    start.click(on_start, [run, methods], [status]).then(show_cards, [run], shown)
    timer.tick(show_cards, [run], shown, show_progress="hidden")
    return CompressTab(run, methods, start, why_not, status, made, timer, {"compare": to_compare, "export": to_export})
