"""The studio in the browser: steps in order, then History. `python -m studio ui` opens it."""

from __future__ import annotations

import os
from dataclasses import dataclass

import gradio as gr

from storage.config import Storage, open_storage
from studio.ui.context import UIContext
from studio.ui.data_step import DataTab, build_data_tab
from studio.ui.history_step import HistoryTab, build_history_tab
from studio.ui.teacher_step import TeacherTab, build_teacher_tab

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@dataclass
class StudioApp:
    blocks: gr.Blocks
    teacher: TeacherTab
    data: DataTab
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
            with gr.Tab("History"):
                history = build_history_tab(ctx)
    return StudioApp(blocks, teacher, data, history)


def launch(host: str = "127.0.0.1", port: int = 7860, open_browser: bool = False) -> None:
    app = build_app()
    app.blocks.launch(server_name=host, server_port=port, inbrowser=open_browser, show_error=False,
                      footer_links=[], theme=gr.themes.Default(font=["system-ui", "sans-serif"],
                                                               font_mono=["ui-monospace", "monospace"]))
