"""History: every job with status, owner, time and latest loss; click one to see its progress, loss curve,
error and (an export) its download; cancel, resume or delete it (after saying what goes). Reads only rows,
refreshed every two seconds."""

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
from studio.ui.export_step import export_view

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
    confirm: gr.Button
    """Shown after Delete says what would go: deleting takes this second click."""
    message: gr.Markdown
    download: gr.HTML
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


NOTHING = {"cancel": False, "resume": False, "delete": False}


@shows_errors(lambda message: (error_box(message), None, NOTHING, ""))
def job_detail(ctx: UIContext, viewer, job_id: int | None) -> tuple[str, object | None, dict, str]:
    """(the job in words, its loss chart or None, which buttons can work now, an export's download link)."""
    if not job_id:
        return "Click a job in the table (or type its id) to see it here.", None, NOTHING, ""
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
    download = export_view(ctx, viewer, job.id)[2] if job.kind == "export" else ""
    return "\n\n".join(lines), loss_figure(curve) if curve else None, can, download


@shows_errors(error_box)
def what_delete_removes(ctx: UIContext, viewer, job_id: int) -> str:
    """The question Delete asks: which jobs and how many files and megabytes go."""
    with ctx.storage.db.session() as s:
        job_rows.get(s, viewer, job_id)  # not theirs: NotFoundError
        family = job_rows.descendants(s, job_id)
        files = [a for j in family for a in records.artifacts_of(s, viewer, j)]
    made = f" and the {len(family) - 1} job(s) made from it ({', '.join(map(str, family[1:]))})" if family[1:] else ""
    return (
        f"**Delete job {job_id}{made}?** {len(files)} file(s), {sum(a.bytes for a in files) / 1e6:.1f} MB, go with "
        "it: models, variants, exports and reports. This cannot be undone. Click **Yes, delete** to go ahead."
    )


def build_history_tab(ctx: UIContext) -> HistoryTab:
    gr.Markdown("### History\nEvery job, newest first. Closing the browser loses nothing: jobs run in the worker.")
    table = gr.Dataframe(headers=HEADERS, interactive=False, label="Jobs")
    with gr.Row():
        job_id = gr.Number(label="Job id", precision=0)
        cancel = gr.Button("Cancel", interactive=False)
        resume = gr.Button("Resume", interactive=False)
        delete = gr.Button("Delete", variant="stop", interactive=False)
        confirm = gr.Button("Yes, delete", variant="stop", visible=False)
    message = gr.Markdown()
    detail = gr.Markdown("Click a job in the table (or type its id) to see it here.")
    download = gr.HTML()
    curve = gr.Plot(label="Training loss", visible=False, elem_id="history-curve")
    timer = gr.Timer(2.0)

    def refresh(chosen, request: gr.Request = None):
        viewer = ctx.viewer(request)
        text, figure, can, link = job_detail(ctx, viewer, chosen)
        return (
            history_rows(ctx, viewer),
            text,
            gr.update(value=figure, visible=figure is not None),  # an export has no loss to draw
            gr.update(interactive=can["cancel"]),
            gr.update(interactive=can["resume"]),
            gr.update(interactive=can["delete"]),
            link,
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

    outputs = [table, detail, curve, cancel, resume, delete, download]
    timer.tick(refresh, [job_id], outputs, show_progress="hidden")
    asked = gr.State(None)
    """The job Delete asked about: 'Yes, delete' deletes that one, whatever the id box says by then."""
    job_id.change(refresh, [job_id], outputs, api_name="history").then(
        lambda chosen, about: gr.update(visible=chosen is not None and chosen == about), [job_id, asked], confirm
    )

    def open_row(event: gr.SelectData):
        """A click anywhere on a row opens that job."""
        return int(event.row_value[0])

    table.select(open_row, None, job_id)

    def on(action: str):
        def handler(chosen, request: gr.Request = None):
            return do(action, chosen, request), *refresh(chosen, request), gr.update(visible=False)

        return handler

    for button, action in ((cancel, "cancel"), (resume, "resume")):
        button.click(on(action), [job_id], [message, *outputs, confirm])
    confirm.click(on("delete"), [asked], [message, *outputs, confirm]).then(lambda: None, None, asked)

    def ask(chosen, request: gr.Request = None):
        if not chosen:
            return error_box("Pick a job first."), gr.update(visible=False), None
        return what_delete_removes(ctx, ctx.viewer(request), int(chosen)), gr.update(visible=True), int(chosen)

    delete.click(ask, [job_id], [message, confirm, asked])
    return HistoryTab(table, job_id, detail, curve, cancel, resume, delete, confirm, message, download, timer)
