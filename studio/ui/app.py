"""The studio in the browser: steps in order, then History. `python -m studio ui` opens it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from html import escape

import gradio as gr

from storage.config import Storage, open_storage
from studio.ui.compare_step import CompareTab, build_compare_tab
from studio.ui.compress_step import CompressTab, build_compress_tab, runs_choice
from studio.ui.context import UIContext
from studio.ui.data_step import DataTab, build_data_tab
from studio.ui.deploy_step import DeployTab, build_deploy_tab
from studio.ui.distill_step import DistillTab, active_job, build_distill_tab, latest_active
from studio.ui.export_step import ExportTab, build_export_tab, exportable_models
from studio.ui.history_step import HistoryTab, build_history_tab
from studio.ui.owners import Owners
from studio.ui.teacher_step import TeacherTab, build_teacher_tab
from studio.ui.wizard import place_of, remembers, teacher_controls

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


STEPS = [
    ("1. Teacher", "teacher"),
    ("2. Data", "data"),
    ("3. Distill", "distill"),
    ("4. Compress", "compress"),
    ("5. Compare", "compare"),
    ("6. Export", "export"),
    ("7. Deploy", "deploy"),
    ("History", "history"),
]
PAGE_CSS = """
@media (min-width: 641px) { #step-picker { display: none !important; } }
"""
"""The step picker is for narrow screens only; wide ones have the whole tab bar."""


@dataclass
class StudioApp:
    blocks: gr.Blocks
    ctx: UIContext
    teacher: TeacherTab
    data: DataTab
    distill: DistillTab
    compress: CompressTab
    compare: CompareTab
    export: ExportTab
    deploy: DeployTab
    history: HistoryTab


def build_app(storage: Storage | None = None, hosted: bool = False, owners: Owners | None = None) -> StudioApp:
    """The studio's page; `hosted`: every request acts for its logged-in user (server.py sets up the login).
    `owners`: the server's record of who uploaded what (handlers accept only the caller's own files)."""
    ctx = UIContext(storage or open_storage(), hosted=hosted, owners=owners)
    # Gradio keeps a copy of each upload in its cache; the studio has its own checked copy, so drop
    # Gradio's after a day (checked hourly): users' raw files do not pile up on a shared server.
    with gr.Blocks(title="SLM Studio", analytics_enabled=False, delete_cache=(3600, 86400)) as blocks:
        with gr.Row():
            gr.Markdown("# SLM Studio\nA big teacher model plus your own data → a small, fast, private student model.")
            account = gr.HTML("", visible=hosted, elem_id="account")
        # on a phone the tab bar has room for two steps: every step stays one tap away here
        picker = gr.Radio(STEPS, label="Step", elem_id="step-picker", container=False)
        with gr.Tabs() as tabs:
            with gr.Tab("1. Teacher", id="teacher"):
                teacher = build_teacher_tab(ctx)
            with gr.Tab("2. Data", id="data"):
                data = build_data_tab(ctx)
            with gr.Tab("3. Distill", id="distill"):
                distill = build_distill_tab(ctx, teacher.chosen, data.dataset_id)
            with gr.Tab("4. Compress", id="compress"):
                compress = build_compress_tab(ctx)
            with gr.Tab("5. Compare", id="compare"):
                compare = build_compare_tab(ctx)
            with gr.Tab("6. Export", id="export"):
                export = build_export_tab(ctx)
            with gr.Tab("7. Deploy", id="deploy"):
                deploy = build_deploy_tab(ctx)
            with gr.Tab("History", id="history"):
                history = build_history_tab(ctx)

        def on_open(request: gr.Request = None):
            """A new tab, or coming back: where the user was (teacher, dataset, preset), the same job live, the
            runs that exist."""
            viewer = ctx.viewer(request)
            pick = runs_choice(ctx, viewer)
            place = place_of(ctx, viewer)
            running = active_job(ctx, viewer)
            # a run under way, or teacher and data chosen: the Distill step (with the last run's outcome) is where they are
            step = "distill" if running or (place.dataset_id and place.teacher) else "teacher"
            return (
                gr.Tabs(selected=step) if step != "teacher" else gr.update(),  # never yank a user who already moved on
                running or latest_active(ctx, viewer),
                pick,
                pick,
                pick,
                pick,
                account_html(getattr(request, "username", None)),
                *teacher_controls(place.teacher),
                place.dataset_id,
                place.dataset_words or gr.update(),
                place.preset or gr.update(),
            )

        teacher_inputs = [teacher.source, teacher.catalog, teacher.folder, teacher.hub_id, teacher.server, teacher.served]
        opened = [tabs, distill.job_id, compress.run, compare.run, export.run, deploy.run, account, *teacher_inputs]
        blocks.load(on_open, None, [*opened, data.dataset_id, data.report, distill.preset]).then(
            distill.readiness, [teacher.chosen, data.dataset_id], [distill.start, distill.why_not]
        )
        blocks.load(deploy.on_open, None, [deploy.status, deploy.served, deploy.stop_pick, deploy.keys, deploy.revoke_pick])

        def fresh_runs(request: gr.Request = None):
            pick = runs_choice(ctx, ctx.viewer(request))
            return pick, pick, pick, pick

        run_lists = [compress.run, compare.run, export.run, deploy.run]
        distill.result.change(fresh_runs, None, run_lists)  # a run finished (its card appeared): every list has it
        for step, button in [*distill.next_steps.items(), *compress.next_steps.items()]:  # cards' buttons: next steps
            button.click(lambda step=step: gr.Tabs(selected=step), None, tabs)

        def export_recommended(run_id, name, request: gr.Request = None):
            """Compare's 'Export this model': the Export step on the same run with the recommended model chosen."""
            models = exportable_models(ctx, ctx.viewer(request), run_id)
            return gr.Tabs(selected="export"), run_id, gr.update(choices=models, value=name)

        compare.export_this.click(export_recommended, [compare.run, compare.recommended], [tabs, export.run, export.model])
        picker.input(lambda step: gr.Tabs(selected=step), picker, tabs).then(lambda: None, None, picker)  # a menu
        teacher.chosen.change(remembers(ctx, "teacher"), [teacher.chosen], None)
        data.dataset_id.change(remembers(ctx, "dataset_id"), [data.dataset_id], None)
        distill.preset.change(remembers(ctx, "preset"), [distill.preset], None)
    return StudioApp(blocks, ctx, teacher, data, distill, compress, compare, export, deploy, history)


def account_html(user: str | None) -> str:
    """Who is logged in, and a way out (a POST: a link elsewhere cannot log anyone out)."""
    if not user:
        return ""
    return (
        f'<form method="post" action="logout" style="text-align:right">Logged in as <b>{escape(user)}</b> '
        '<button type="submit" style="margin-left:8px;padding:4px 10px;border-radius:6px;border:1px solid #bbb;'
        'background:#fff;cursor:pointer">Log out</button></form>'
    )
