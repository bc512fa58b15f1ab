"""Step 3, Distill: a preset (or every setting), Start runs a job in the worker, then a live progress bar
and loss curve. The job lives in the database, so leaving and coming back shows the same job."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

import gradio as gr

from storage import jobs as job_rows
from storage import records
from storage import workers as worker_rows
from storage.jobs import as_utc
from storage.tables import JobStatus
from studio.charts import loss_figure
from studio.distill_config import DistillConfig
from studio.distill_plan import student_words
from studio.errors import ConfigError
from studio.estimate import PastRun, estimate, fitted_length
from studio.jobs import service
from studio.outcome import outcome_lines
from studio.settings import applies_to
from studio.teacher import CATALOG
from studio.teacher_cost import known_cost
from studio.ui.context import UIContext, error_box, shows_errors
from studio.ui.controls import settings_controls
from studio.ui.label_step import build_label_box
from studio.ui.teacher_step import SERVED
from studio.ui.try_box import build_try_box
from studio.words import Task

# Presets per task: the student's depth and how long it trains are the big levers. Balanced is the plain
# defaults: a floor in training steps, validation with early stopping, the teacher's learning rate chosen.
PRESETS = {
    Task.CLASSIFICATION: {
        "Fastest": {"student_layers": 2, "min_steps": 150, "teacher_learning_rate": 1e-4},
        "Balanced": {},
        "Best quality": {"student_layers": 4, "epochs": 3, "teacher_epochs": 3, "min_steps": 400},
    },
    # text generators: the 'answers' recipe (see studio.generator); the presets change its budget in tokens
    Task.CAUSAL_LM: {
        "Fastest": {"batch_size": 8, "temperature": 1.0, "kd_tokens": 150_000},
        "Balanced": {"batch_size": 8, "temperature": 1.0},
        "Best quality": {"batch_size": 8, "temperature": 1.0, "kd_tokens": 1_000_000},
    },
}
PRESET_WORDS = {
    "Fastest": "smallest student (classifiers), shortest training, no learning-rate search",
    "Balanced": "a good default: enough training for small data, learning rate chosen on your data",
    "Best quality": "deeper student, longer training; slower to train and to run",
}
LIVE, IDLE = 1.5, 10.0
"""Seconds between looks at the followed job: while it is queued or running, and otherwise."""
ADVANCED = [f for f in dataclasses.fields(DistillConfig) if f.metadata.get("advanced")]
"""The advanced settings shown: every DistillConfig field made with setting(..., advanced=True)."""
LAYERS_OF_TEACHER = "(layers of the teacher; MiniLM's for a text generator)"
STUDENTS = [LAYERS_OF_TEACHER] + [key for key, entry in CATALOG.items() if entry.task == Task.CLASSIFICATION]
"""A student other than the teacher's own layers: a catalog classifier (folders are the teacher step's business)."""


@dataclass
class DistillTab:
    preset: gr.Radio
    settings: dict[str, gr.components.Component]
    start: gr.Button
    why_not: gr.Markdown
    cancel: gr.Button
    status: gr.Markdown
    progress: gr.HTML
    curve: gr.Plot
    job_id: gr.State
    timer: gr.Timer
    readiness: Callable
    """(teacher spec, dataset id) -> (Start's update, why not): for events of other steps, e.g. a page opening."""
    result: gr.Markdown
    next_steps: dict[str, gr.Button]
    """The buttons of a finished run's card, by the step they open."""
    estimate: gr.Markdown
    """How long Start would take, before it is pressed."""


def preset_values(task: str, preset: str) -> dict:
    values = DistillConfig().to_dict()
    values.update(PRESETS.get(task, PRESETS[Task.CLASSIFICATION]).get(preset, {}))
    return values


def start_problem(teacher: str | None, dataset_id: int | None, running: int | None = None) -> str | None:
    """Why Start cannot work yet, or None; each message names the step that is really missing."""
    if running:
        return f"Job {running} is still running: wait for it to finish, or cancel it, before starting another."
    if not teacher and not dataset_id:
        return "Choose a teacher in step 1 and check a dataset in step 2 first."
    if not teacher:
        return "Choose a usable teacher in step 1 first (the one picked there cannot be used)."
    if not dataset_id:
        return "Check a dataset in step 2 first."
    return None


def active_job(ctx: UIContext, viewer, kind: str = "distill") -> int | None:
    """This user's queued or running job of ``kind``, if any."""
    with ctx.storage.db.session() as s:
        for status in (JobStatus.RUNNING, JobStatus.QUEUED):
            jobs = job_rows.list_jobs(s, viewer, limit=1, kind=kind, status=status)
            if jobs:
                return jobs[0].id
    return None


ANY_WORKER = "any worker"


def run_on_choices(ctx: UIContext) -> list[str]:
    """'any worker', then the tags of the workers running now."""
    return [ANY_WORKER, *sorted({tag for w in worker_rows.live(ctx.storage.db) for tag in w.tags})]


@shows_errors(lambda message: (None, error_box(message)))
def start_job(
    ctx: UIContext, viewer, teacher: str | None, dataset_id: int | None, values: dict, run_on: str = ANY_WORKER
) -> tuple[int | None, str]:
    """Submit the distillation; (job id or None, what to tell the user). ``run_on``: a worker tag the job needs."""
    problem = start_problem(teacher, dataset_id, active_job(ctx, viewer))  # the page's button may be out of date
    if problem:
        return None, error_box(problem)
    config = distill_config(teacher, values)
    with ctx.storage.db.session() as s:
        name = records.get_dataset(s, viewer, dataset_id).name
    job_id = service.submit(
        ctx.storage,
        viewer,
        "distill",
        {"dataset_id": dataset_id, "distill": config.to_dict()},
        title=f"{config.teacher.rsplit('/', 1)[-1]} -> {student_words(config.student_layers)} on {name}",
        needs=[run_on.strip().lower()] if run_on and run_on != ANY_WORKER else None,
    )
    return job_id, f"Job {job_id} queued. It runs in the worker; you can close this page and come back."


def distill_config(teacher: str, values: dict) -> DistillConfig:
    """The run the page's settings ask for; raises ConfigError naming what is wrong."""
    student = values.get("student")
    if student in (None, "", LAYERS_OF_TEACHER):
        values = {**values, "student": None}
    elif student not in STUDENTS:  # the page offers catalog students only; a request may say anything
        raise ConfigError([f"'{student}' is not a student this studio offers; choose one of {', '.join(STUDENTS)}"])
    address, served, model = teacher.rpartition(SERVED) if teacher.startswith(("http://", "https://")) else ("", "", teacher)
    if served:  # a server the user runs (step 1): its model is asked, not trained
        values = {**values, "teacher_endpoint": address, "teacher_training": "ask"}
    return DistillConfig.from_dict({**values, "teacher": model})


def _train_texts(dataset) -> int:
    return int((dataset.report or {}).get("split_sizes", {}).get("train") or dataset.rows)


@shows_errors(lambda message: "")
def time_estimate(ctx: UIContext, viewer, teacher: str | None, dataset_id: int | None, values: dict) -> str:
    """How long Start would take on this machine (studio.estimate), in a line; empty when nothing measured says."""
    if not teacher or not dataset_id:
        return ""
    config = distill_config(teacher, values)  # settings a user is still typing: no estimate, Start says why
    with ctx.storage.db.session() as s:
        dataset = records.get_dataset(s, viewer, dataset_id)
        task, texts, rows = dataset.task, _train_texts(dataset), dataset.rows
        unlabelled = (dataset.report or {}).get("unlabelled", 0)
        folder, labels = ctx.storage.store.local(dataset.path), tuple(sorted((dataset.report or {}).get("label_counts") or {}))
        past = [
            PastRun(
                job.id,
                (as_utc(job.finished_at) - as_utc(job.started_at)).total_seconds(),
                _train_texts(used),
                (job.config.get("distill") or {}).get("teacher", ""),
                used.task,
                job.config.get("distill") or {},
                (used.report or {}).get("unlabelled", 0),
            )
            for job, used in records.finished_runs(s, viewer)
        ]
    length = lambda: fitted_length(teacher, str(folder), labels)  # noqa: E731 (read only when needed)
    found = estimate(config, task, texts, past, known_cost(teacher, task), length, rows, unlabelled)
    return f"**Time:** {found.words()}" if found else ""


def runs_on(ctx: UIContext, values: dict) -> str:
    """Where Start would run: the workers taking jobs now (what each machine offers) and the processes the job
    trains in (the setting; Auto is one per GPU of the machine that runs it)."""
    rows = worker_rows.live(ctx.storage.db)
    if not rows:
        return "**Runs on:** no worker is running now; the job waits in the queue until one starts."
    machines = "; ".join(
        f"{w.host} ({worker_rows.Capacity(w.host, w.cores, w.memory_bytes, w.gpus, w.gpu_names).words()}, "
        f"tags {', '.join(w.tags)})"
        for w in rows
    )
    asked = int(values.get("processes") or 0)
    if asked == 0:
        how = "Auto: one per GPU where a machine has several, else one"
    else:
        how = f"{asked}, each training on its part of every batch"
        if all(w.gpus == 0 for w in rows) and asked > 1:
            how += " (on CPUs the processes share the same cores: rarely faster, see the README)"
        if any(0 < w.gpus < asked for w in rows):
            how += " (at most one per GPU: fewer on a machine with fewer GPUs)"
    together = int(values.get("machines") or 1)
    if together > 1:
        how += f"; on {together} machines at once (their workers must share one artifact folder)"
    return f"**Runs on:** {machines}. **Processes:** {how}."


def progress_bar(fraction: float, label: str, job=None) -> str:
    """A bar with what is happening above it (readable on any colour), and for a job under way the time it has
    taken and, once a tenth is done, about how long is left (from its pace so far: an estimate, said so)."""
    pct = max(0.0, min(1.0, fraction)) * 100
    timing = _timing(job, fraction) if job is not None else ""
    return (
        f'<div style="font-size:14px;margin-bottom:4px">{pct:.0f}% — {escape(label)}{timing}</div>'
        f'<div class="studio-progress" role="progressbar" aria-valuenow="{pct:.0f}" aria-valuemin="0" '
        f'aria-valuemax="100" style="border:1px solid #d1d5db;border-radius:6px;height:12px">'
        f'<div style="background:#2563eb;width:{pct:.1f}%;height:100%;border-radius:6px"></div></div>'
    )


def _timing(job, fraction: float) -> str:
    if job.started_at is None or job.status not in (JobStatus.RUNNING, JobStatus.DONE):
        return ""
    end = as_utc(job.finished_at) if job.status == JobStatus.DONE and job.finished_at else datetime.now(UTC)
    taken = (end - as_utc(job.started_at)).total_seconds()
    said = f" · {_duration(taken)} so far" if job.status == JobStatus.RUNNING else f" · took {_duration(taken)}"
    if job.status == JobStatus.RUNNING and 0.1 <= fraction < 1.0:
        said += f", about {_duration(taken * (1 - fraction) / fraction)} left (estimated from its pace so far)"
    return said


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


@shows_errors(lambda message: (error_box(message), "", None, False))
def job_view(ctx: UIContext, viewer, job_id: int | None) -> tuple[str, str, object | None, bool]:
    """(status words, progress bar, loss chart, whether Cancel can work) for the job followed."""
    if not job_id:
        return "No distillation started yet.", "", None, False
    with ctx.storage.db.session() as s:
        job = job_rows.get(s, viewer, job_id)
        curve = records.training_curve(s, viewer, job_id)
        ahead = job_rows.jobs_ahead(s, job) if job.status == JobStatus.QUEUED else 0
    words = f"**Job {job.id}** is **{job.status}**."
    if job.status == JobStatus.QUEUED:
        words += (
            f" Waiting for the worker to finish {ahead} job(s) ahead of it."
            if ahead
            else " Waiting for the worker to pick it up (a few seconds). If it stays queued, the studio's worker is "
            "not running: restart the studio, or ask your administrator."
        )
    if job.status == JobStatus.DONE:
        words += " Go on to step 4 (Compress) or 5 (Compare)."
    if job.error:
        words += "\n\n" + error_box(job.error)
    return (
        words,
        progress_bar(job.progress, job.step, job),
        loss_figure(curve) if curve else None,
        job.status in (JobStatus.QUEUED, JobStatus.RUNNING),
    )


@shows_errors(lambda message: error_box(message))
def result_card(ctx: UIContext, viewer, job_id: int | None) -> str:
    """A finished run in plain words: the student beside the teacher and the baselines (studio.outcome)."""
    if not job_id:
        return ""
    with ctx.storage.db.session() as s:
        job = job_rows.get(s, viewer, job_id)
        if job.status != JobStatus.DONE or job.kind != "distill":
            return ""
        models = [m.with_scores() for m in records.run_models(s, viewer, job_id, made_from=False)]
    lines = outcome_lines(models)
    if not lines:
        return ""
    return (
        f"### What you got (job {job_id})\n"
        + "\n\n".join(lines)
        + "\n\nNext: make it smaller still, compare every model, or export it."
    )


def latest_active(ctx: UIContext, viewer, kind: str = "distill") -> int | None:
    """The job to show when a page opens: this user's newest running or queued one, else the newest."""
    with ctx.storage.db.session() as s:
        jobs = job_rows.list_jobs(s, viewer, limit=20, kind=kind)
    active = [j for j in jobs if j.status in (JobStatus.RUNNING, JobStatus.QUEUED)]
    shown = active or jobs
    return shown[0].id if shown else None


def build_distill_tab(ctx: UIContext, teacher: gr.State, dataset_id: gr.State) -> DistillTab:
    gr.Markdown("### 3. Distill\nThe student learns from the teacher's answers on your data.")
    preset = gr.Radio(
        list(PRESET_WORDS), value="Balanced", label="Preset", info="; ".join(f"{k}: {v}" for k, v in PRESET_WORDS.items())
    )
    defaults = preset_values(Task.CLASSIFICATION, "Balanced")
    with gr.Accordion("Advanced settings", open=False):
        # the page offers catalog students; a text generator teaching a classifier gets MiniLM
        own = {
            "student": lambda label, info, _: gr.Dropdown(STUDENTS, value=LAYERS_OF_TEACHER, label=label, info=info),
            "label_descriptions": lambda label, info, value: gr.Textbox(
                value=value, label=label, info=info, lines=3, placeholder="billing: payments, invoices, charges"
            ),
        }
        settings = settings_controls(ADVANCED, defaults, own=own)
        run_on = gr.Dropdown(
            run_on_choices(ctx),
            value=ANY_WORKER,
            label="Run on",
            info="Any worker, or only workers with this tag (python -m studio worker --tags gpu,...). A tag no worker "
            "has yet: the job waits for one.",
            allow_custom_value=True,
            elem_id="run-on",
        )
    why_not = gr.Markdown(start_problem(None, None))
    estimated = gr.Markdown(elem_id="distill-estimate")
    with gr.Row():
        start = gr.Button("Start distillation", variant="primary", interactive=False)
        cancel = gr.Button("Cancel", interactive=False)
    status = gr.Markdown("No distillation started yet.")
    job_id = gr.State(None)
    progress = gr.HTML()
    result = gr.Markdown(elem_id="distill-result")
    with gr.Row(visible=False) as next_steps:
        to_compress = gr.Button("Make it smaller (step 4)", size="sm")
        to_compare = gr.Button("Compare every model (step 5)", size="sm")
        to_export = gr.Button("Export the student (step 6)", size="sm")
    build_try_box(ctx, job_id)
    build_label_box(ctx, job_id, result)
    curve = gr.Plot(label="Training loss (live)")
    timer = gr.Timer(LIVE)
    names = list(settings)

    def apply_preset(choice, ds, request: gr.Request = None):
        task = Task.CLASSIFICATION
        if ds:
            with ctx.storage.db.session() as s:
                task = records.get_dataset(s, ctx.viewer(request), ds).task
        values = preset_values(task, choice)
        return [
            gr.update(
                value=values[f.name] if f.name != "student" else values[f.name] or LAYERS_OF_TEACHER, visible=applies_to(f, task)
            )
            for f in ADVANCED
        ]  # a setting of the other task is hidden (top k for a classifier, label weights for a text generator)

    def readiness(spec, ds, request: gr.Request = None):
        problem = start_problem(spec, ds, active_job(ctx, ctx.viewer(request)))
        return gr.update(interactive=problem is None), ("" if problem is None else f"*{problem}*")

    def on_estimate(spec, ds, request: gr.Request, *values):
        chosen = dict(zip(names, _plain(values)))
        return "\n\n".join(x for x in (time_estimate(ctx, ctx.viewer(request), spec, ds, chosen), runs_on(ctx, chosen)) if x)

    def on_start(current, spec, ds, where, request: gr.Request, *values):  # request before *args: Gradio fills only those
        viewer = ctx.viewer(request)
        new_id, said = start_job(ctx, viewer, spec, ds, dict(zip(names, _plain(values))), where)
        # refused (a double click, a job from another tab): the page goes on following the job that runs
        return new_id or active_job(ctx, viewer) or current, said

    def follow(current, spec, ds, request: gr.Request = None):
        words, bar, figure, can_cancel = job_view(ctx, ctx.viewer(request), current)
        card = result_card(ctx, ctx.viewer(request), current)
        shown = (card, gr.update(visible=bool(card)))
        pace = gr.Timer(LIVE if can_cancel else IDLE)  # idle: a slow look for a job started in another tab
        return words, bar, figure, gr.update(interactive=can_cancel), *readiness(spec, ds, request), *shown, pace

    @shows_errors(error_box)
    def on_cancel(current, request: gr.Request = None):
        service.cancel(ctx.storage, ctx.viewer(request), current)
        return "Stopping after the current step (it can be resumed from History)."

    asked = [teacher, dataset_id, *settings.values()]
    for changed in (preset, dataset_id):  # a page opening restores both: the estimate follows
        changed.change(apply_preset, [preset, dataset_id], list(settings.values())).then(on_estimate, asked, estimated)
    for state in (teacher, dataset_id):
        state.change(readiness, [teacher, dataset_id], [start, why_not])
    teacher.change(on_estimate, asked, estimated)
    for control in settings.values():
        control.input(on_estimate, asked, estimated)
    followed = [status, progress, curve, cancel, start, why_not, result, next_steps, timer]
    start.click(on_start, [job_id, teacher, dataset_id, run_on, *settings.values()], [job_id, status]).then(
        follow, [job_id, teacher, dataset_id], followed
    )
    timer.tick(follow, [job_id, teacher, dataset_id], followed, show_progress="hidden")
    result.change(on_estimate, asked, estimated)  # a run finished: the next estimate comes from it
    cancel.click(on_cancel, [job_id], [status])
    next_buttons = {"compress": to_compress, "compare": to_compare, "export": to_export}
    return DistillTab(
        preset,
        settings,
        start,
        why_not,
        cancel,
        status,
        progress,
        curve,
        job_id,
        timer,
        readiness,
        result,
        next_buttons,
        estimated,
    )


def _plain(values) -> list:
    """Gradio numbers arrive as floats; whole-number settings must be ints."""
    return [int(v) if isinstance(v, float) and v.is_integer() else v for v in values]
