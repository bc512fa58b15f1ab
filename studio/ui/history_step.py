"""History: every job with status, owner, time and latest loss; open one to see its progress, loss
curve and error; cancel, resume or delete it. Reads only rows, refreshed every two seconds."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from storage import jobs as job_rows
from storage import records
from storage.tables import JobStatus
from studio.charts import loss_figure
from studio.jobs import service
from studio.metrics import scores_text
from studio.ui.context import UIContext, error_box, shows_errors

HEADERS = ["id", "kind", "status", "progress", "step", "created", "owner", "title", "latest loss"]


@dataclass
class HistoryTab:
    table: gr.Dataframe
    job_id: gr.Number
    detail: gr.Markdown
    curve: gr.Plot
    cancel: gr.Button
    resume: gr.Button
    delete: gr.Button
    message: gr.Markdown
    timer: gr.Timer


def history_rows(ctx: UIContext, viewer, limit: int = 50) -> list[list]:
    with ctx.storage.db.session() as s:
        jobs = job_rows.list_jobs(s, viewer, limit=limit)
    return [
        [
            j.id,
            j.kind,
            j.status,
            f"{j.progress:.0%}",
            j.step,
            f"{j.created_at:%Y-%m-%d %H:%M}",
            j.owner,
            j.title,
            "" if j.last_loss is None else f"{j.last_loss:.4f}",
        ]
        for j in jobs
    ]


@shows_errors(lambda message: (error_box(message), None, {"cancel": False, "resume": False, "delete": False}))
def job_detail(ctx: UIContext, viewer, job_id: int | None) -> tuple[str, object | None, dict]:
    """(the job in words, its loss chart, which buttons can work now)."""
    if not job_id:
        return "Pick a job by its id to see it here.", None, {"cancel": False, "resume": False, "delete": False}
    with ctx.storage.db.session() as s:
        job = job_rows.get(s, viewer, int(job_id))
        curve = records.training_curve(s, viewer, job.id)
        scores = [(v.name, records.scores_of(s, v.id)) for v in records.variants_of(s, viewer, job.id)]
    lines = [f"**Job {job.id}** — {job.kind}: {job.title}", f"Status **{job.status}**, {job.progress:.0%} — {job.step}"]
    if job.error:
        lines.append(error_box(job.error))
    for name, values in scores:
        shown = scores_text(values, ["accuracy", "macro_f1", "perplexity", "rouge_l", "latency_ms", "size_bytes"])
        lines.append(f"- {name}: {shown or 'not measured'}")
    can = {
        "cancel": job.status in (JobStatus.QUEUED, JobStatus.RUNNING),
        "resume": job.status in job_rows.RESUMABLE,
        "delete": job.status not in (JobStatus.QUEUED, JobStatus.RUNNING),
    }
    return "\n\n".join(lines), loss_figure(curve) if curve else None, can


def build_history_tab(ctx: UIContext) -> HistoryTab:
    gr.Markdown("### History\nEvery job, newest first. Closing the browser loses nothing: jobs run in the worker.")
    table = gr.Dataframe(headers=HEADERS, interactive=False, label="Jobs")
    with gr.Row():
        job_id = gr.Number(label="Job id", precision=0)
        cancel = gr.Button("Cancel", interactive=False)
        resume = gr.Button("Resume", interactive=False)
        delete = gr.Button("Delete", variant="stop", interactive=False)
    message = gr.Markdown()
    detail = gr.Markdown("Pick a job by its id to see it here.")
    curve = gr.Plot(label="Training loss")
    timer = gr.Timer(2.0)

    def refresh(chosen, request: gr.Request = None):
        viewer = ctx.viewer(request)
        text, figure, can = job_detail(ctx, viewer, chosen)
        return (
            history_rows(ctx, viewer),
            text,
            figure,
            gr.update(interactive=can["cancel"]),
            gr.update(interactive=can["resume"]),
            gr.update(interactive=can["delete"]),
        )

    @shows_errors(error_box)
    def do(action, chosen, request: gr.Request = None) -> str:
        viewer = ctx.viewer(request)
        if action == "cancel":
            now = service.cancel(ctx.storage, viewer, int(chosen))
            return "Cancelled." if now == JobStatus.CANCELLED else "It stops after its current step."
        if action == "resume":
            service.resume(ctx.storage, viewer, int(chosen))
            return "Queued again; it continues from its last checkpoint."
        gone = service.delete(ctx.storage, viewer, int(chosen))
        return f"Deleted job(s) {', '.join(map(str, gone))} and their files."

    def act(action, chosen, request: gr.Request = None):
        return do(action, chosen, request), *refresh(chosen, request)

    outputs = [table, detail, curve, cancel, resume, delete]
    timer.tick(refresh, [job_id], outputs)
    job_id.change(refresh, [job_id], outputs, api_name="history")

    def on(action: str):
        def handler(chosen, request: gr.Request = None):
            return act(action, chosen, request)

        return handler

    for button, action in ((cancel, "cancel"), (resume, "resume"), (delete, "delete")):
        button.click(on(action), [job_id], [message, *outputs])
    return HistoryTab(table, job_id, detail, curve, cancel, resume, delete, message, timer)
