"""Step 6, Export: one click makes a zip of the chosen model (an export job) and offers it for download.

The zip is served by the studio's own /download/<job id> route, which checks that the job
belongs to the logged-in user in the storage query, never by a file path a browser could guess.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import gradio as gr

from storage import jobs as job_rows
from storage import records
from storage.tables import JobStatus
from studio.baselines import TFIDF
from studio.charts import Budget, recommend
from studio.export.settings import ExportSettings
from studio.jobs import service
from studio.ui.compress_step import runs_choice
from studio.ui.context import UIContext, error_box, shows_errors
from studio.ui.controls import settings_controls
from studio.ui.distill_step import progress_bar
from studio.ui.try_box import build_try_box
from studio.words import Task


@dataclass
class ExportTab:
    run: gr.Dropdown
    model: gr.Dropdown
    options: dict[str, gr.components.Component]
    """ExportSettings' fields but the model, by name."""
    button: gr.Button
    status: gr.Markdown
    progress: gr.HTML
    download: gr.HTML
    job_id: gr.State


OPTIONS = [f for f in dataclasses.fields(ExportSettings) if f.name != "variant"]
"""What to put in the zip: every export setting but the model, which has its own dropdown."""


def exportable_models(ctx: UIContext, viewer, run_id: int | None) -> list[tuple[str, str]]:
    """Student, teacher and every variant made from the run (those that came out), the recommended one first and
    said to be."""
    if not run_id:
        return []
    with ctx.storage.db.session() as s:
        models = records.run_models(s, viewer, run_id)
    best = recommend([m.with_scores() for m in models], Budget()).name
    named = [("student (the distilled model)", "student"), ("teacher", "teacher")]
    named += [
        (f"{m.name} ({m.role}{'' if m.method in ('', m.name) else ': ' + m.method})", m.name)
        for m in models
        if m.status == "ok" and m.name not in ("student", "teacher") and (m.role != "baseline" or m.name == TFIDF)
    ]
    first = [(f"{label} — recommended", name) for label, name in named if name == best]
    return first + [(label, name) for label, name in named if name != best]


def run_task(ctx: UIContext, viewer, run_id: int | None) -> str | None:
    """What the run's models do ('classification' or 'causal_lm'), from its config.json; None before it has one."""
    if not run_id:
        return None
    with ctx.storage.db.session() as s:
        folder = job_rows.get(s, viewer, run_id).folder
    config = ctx.storage.store.local(f"{folder}/config.json")
    return json.loads(config.read_text()).get("task") if config.exists() else None


@shows_errors(lambda message: (None, error_box(message)))
def start_export(ctx: UIContext, viewer, run_id, model, *values) -> tuple[int | None, str]:
    """``values``: the OPTIONS' controls, in order. The job's own checks name any value out of range."""
    if not run_id:
        return None, error_box("Choose a finished distillation first (step 3).")
    settings = {"variant": model or "student", **dict(zip([f.name for f in OPTIONS], values))}
    if isinstance(settings["threshold"], str):  # typed as text (through the API)
        try:
            settings["threshold"] = float(settings["threshold"]) if settings["threshold"].strip() else None
        except ValueError:
            return None, error_box(
                f"The confidence threshold '{settings['threshold']}' is not a number; use one from 0 to 1, "
                "or leave it empty to have it chosen for you."
            )
    job_id = service.submit(
        ctx.storage, viewer, "export", settings, parent_id=int(run_id), title=f"export {settings['variant']} of job {run_id}"
    )
    return job_id, f"Export job {job_id} queued."


@shows_errors(lambda message: (error_box(message), "", ""))
def export_view(ctx: UIContext, viewer, job_id: int | None) -> tuple[str, str, str]:
    """(status words, progress bar, download link and summary) of the export job followed."""
    if not job_id:
        return "", "", ""
    with ctx.storage.db.session() as s:
        job = job_rows.get(s, viewer, job_id)
        files = [a for a in records.artifacts_of(s, viewer, job_id) if a.kind == "export"]
    words = f"**Export job {job.id}** is **{job.status}**."
    if job.error:
        words += "\n\n" + error_box(job.error)
    if job.status != JobStatus.DONE or not files:
        return words, progress_bar(job.progress, job.step) if job.status in (JobStatus.QUEUED, JobStatus.RUNNING) else "", ""
    summary = json.loads(ctx.storage.store.local(f"{job.folder}/export.json").read_text())
    return words, "", download_html(job.id, files[0].path.rsplit("/", 1)[-1], files[0].bytes, summary)


def download_html(job_id: int, name: str, size: int, summary: dict) -> str:
    from html import escape

    checks = summary.get("checks") or {}
    items = "".join(
        f"<li><code>{escape(p)}</code> — {escape(a)}{_gguf_words(checks, p)}</li>" for p, a in summary["files"].items()
    )
    hybrid = summary.get("hybrid")
    share = (
        (
            f"<p>Small model first: the student answers <b>{hybrid['student_share']:.1%}</b> of inputs alone at "
            f"confidence {hybrid['threshold']:.3g} ({escape(hybrid['measured_on'])}); the teacher answers the rest."
            "</p>"
        )
        if hybrid
        else ""
    )
    notes = "".join(f"<p><i>{_code(escape(n))}</i></p>" for n in summary.get("notes", []))
    return (
        f'<a id="export-download" href="download/{job_id}" download="{escape(name)}" '
        'style="display:inline-block;padding:10px 16px;background:#2563eb;color:white;border-radius:8px;'
        f'text-decoration:none;font-weight:600">Download {escape(name)} ({size / 1e6:.1f} MB)</a>'
        f"<ul>{items}</ul>{share}{notes}"
    )


def _gguf_words(checks: dict, path: str) -> str:
    """A GGUF file's exact size and how often it predicts the float model's next token (bundle's checks)."""
    if f"{path} agreement" not in checks:
        return ""
    return (
        f"; {int(checks[f'{path} bytes']):,} bytes, the float model's next token at "
        f"<b>{checks[f'{path} agreement']:.1%}</b> of positions"
    )


def _code(text: str) -> str:
    """The notes are written for the model card (Markdown): `x` becomes <code>x</code> here."""
    import re

    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def build_export_tab(ctx: UIContext) -> ExportTab:
    gr.Markdown(
        "### 6. Export\nOne zip with everything needed to use the model without the studio: a Hugging Face "
        "folder, a model card, ONNX, GGUF (text generators) and a `predict.py` example."
    )
    with gr.Row():
        run = gr.Dropdown(label="Run to export from", choices=[], interactive=True)
        model = gr.Dropdown(label="Model to export", choices=[], interactive=True)
    with gr.Column():  # one under another: a row squeezes checkboxes' help to a word a line on a phone
        options = settings_controls(OPTIONS, ExportSettings().to_dict())
    build_try_box(ctx, run, model)
    button = gr.Button("Export (.zip)", variant="primary", interactive=False)
    status = gr.Markdown()
    progress = gr.HTML()
    download = gr.HTML(elem_id="export-result")
    job_id = gr.State(None)
    shown = gr.State(None)
    """The finished export whose link is on the page: the timer leaves it alone (no flicker under a click)."""
    timer = gr.Timer(2.0)

    @shows_errors(
        lambda message: (
            gr.update(choices=[], value=None),
            gr.update(interactive=False),
            error_box(message),
            gr.update(),
            gr.update(),
        )
    )
    def on_run(run_id, current, request: gr.Request = None):
        models = exportable_models(ctx, ctx.viewer(request), run_id)
        generator = run_task(ctx, ctx.viewer(request), run_id) == Task.CAUSAL_LM
        keep = current if current in {name for _, name in models} else models[0][1] if models else None
        return (
            gr.update(choices=models, value=keep),  # a model already chosen (Compare's 'Export this') stays chosen
            gr.update(interactive=bool(models)),
            "" if run_id else "*Finish a distillation first (step 3).*",
            gr.update(visible=generator, value=generator),  # GGUF is for text generators only
            gr.update(visible=generator),
        )

    # request before *args: Gradio only fills in parameters ahead of them
    def on_export(run_id, chosen, request: gr.Request, *options):
        new_id, said = start_export(ctx, ctx.viewer(request), run_id, chosen, *options)
        return new_id, said, "", "", None

    def follow(current, done, request: gr.Request = None):
        if not current or current == done:
            return gr.update(), gr.update(), gr.update(), done
        words, bar, link = export_view(ctx, ctx.viewer(request), current)
        return words, bar, link, current if link else None

    def refresh_runs(request: gr.Request = None):
        return runs_choice(ctx, ctx.viewer(request))

    def refresh_models(run_id, current, request: gr.Request = None):  # variants made since the run was picked
        try:
            models = exportable_models(ctx, ctx.viewer(request), run_id)
        except Exception:  # noqa: BLE001 - the run's own message shows when it is picked
            return gr.update()
        keep = current if current in {value for _, value in models} else (models[0][1] if models else None)
        return gr.update(choices=models, value=keep)

    run.focus(refresh_runs, None, [run])
    model.focus(refresh_models, [run, model], [model])
    outs = [model, button, status, options["gguf"], options["gguf_types"]]
    run.change(on_run, [run, model], outs, api_name="export_models")
    outputs = [status, progress, download, shown]
    button.click(on_export, [run, model, *options.values()], [job_id, *outputs]).then(follow, [job_id, shown], outputs)
    timer.tick(follow, [job_id, shown], outputs)
    return ExportTab(run, model, options, button, status, progress, download, job_id)
