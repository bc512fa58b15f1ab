"""Step 6, Export: one click gives a zip of the chosen model (built with the export feature)."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from studio.ui.context import UIContext

NOT_YET = ("Export is not built yet: the zip (Hugging Face folder, model card, ONNX, GGUF, predict.py) "
           "comes with the export feature. Until then, each model's files are in its job folder (see History).")


@dataclass
class ExportTab:
    button: gr.Button
    note: gr.Markdown


def build_export_tab(ctx: UIContext) -> ExportTab:
    gr.Markdown("### 6. Export")
    button = gr.Button("Download the chosen model (.zip)", interactive=False)
    note = gr.Markdown(f"*{NOT_YET}*")
    return ExportTab(button, note)
