"""The studio in the browser: steps in order, then History. `python -m studio ui` opens it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from storage.config import Storage, open_storage
from studio.ui.compare_step import CompareTab, build_compare_tab
from studio.ui.compress_step import CompressTab, build_compress_tab, runs_choice
from studio.ui.context import UIContext
from studio.ui.data_step import DataTab, build_data_tab
from studio.ui.distill_step import DistillTab, build_distill_tab, latest_active
from studio.ui.export_step import ExportTab, build_export_tab
from studio.ui.history_step import HistoryTab, build_history_tab
from studio.ui.teacher_step import TeacherTab, build_teacher_tab

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@dataclass
class StudioApp:
    blocks: gr.Blocks
    teacher: TeacherTab
    data: DataTab
    distill: DistillTab
    compress: CompressTab
    compare: CompareTab
    export: ExportTab
    history: HistoryTab


def build_app(storage: Storage | None = None) -> StudioApp:
    ctx = UIContext(storage or open_storage())
    with gr.Blocks(title="SLM Studio", analytics_enabled=False) as blocks:
        gr.Markdown("# SLM Studio\nA big teacher model plus your own data → a small, fast, private student model.")
        with gr.Tabs():
            with gr.Tab("1. Teacher"):
                teacher = build_teacher_tab(ctx)
            with gr.Tab("2. Data"):
                data = build_data_tab(ctx)
            with gr.Tab("3. Distill"):
                distill = build_distill_tab(ctx, teacher.chosen, data.dataset_id)
            with gr.Tab("4. Compress"):
                compress = build_compress_tab(ctx)
            with gr.Tab("5. Compare"):
                compare = build_compare_tab(ctx)
            with gr.Tab("6. Export"):
                export = build_export_tab(ctx)
            with gr.Tab("History"):
                history = build_history_tab(ctx)

        def on_open(request: gr.Request = None):
            """A new tab, or coming back: the same job live, the runs that exist."""
            viewer = ctx.viewer(request)
            pick = runs_choice(ctx, viewer)
            return latest_active(ctx, viewer), pick, pick

        blocks.load(on_open, None, [distill.job_id, compress.run, compare.run])
    return StudioApp(blocks, teacher, data, distill, compress, compare, export, history)


def launch(host: str = "127.0.0.1", port: int = 7860, open_browser: bool = False, with_worker: bool = True) -> None:
    """Serve the studio. On a laptop it also starts one worker process, so Start just works; a team server
    runs its workers separately (`with_worker=False`)."""
    app = build_app()
    worker = None
    if with_worker:
        worker = subprocess.Popen([sys.executable, "-m", "studio", "worker"],
                                  env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    try:
        # System fonts only: nothing is fetched from a font CDN, so the page renders offline.
        app.blocks.launch(server_name=host, server_port=port, inbrowser=open_browser, show_error=False,
                          footer_links=[], theme=gr.themes.Default(font=["system-ui", "sans-serif"],
                                                                   font_mono=["ui-monospace", "monospace"]))
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)  # running jobs save their step and stay resumable
            worker.wait(timeout=120)
