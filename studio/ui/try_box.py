"""A "Try it" box: type a text, see what a model of the run answers, and what the teacher answers beside it."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from storage import jobs as job_rows
from studio.try_it import try_model
from studio.ui.context import UIContext, error_box, shows_errors


@dataclass
class TryBox:
    text: gr.Textbox
    button: gr.Button
    said: gr.Markdown


@shows_errors(error_box)
def tried(ctx: UIContext, viewer, run_id: int | None, name: str | None, text: str) -> str:
    """The model's answer and, for any other model, the teacher's, in words."""
    if not run_id:
        return error_box("Finish a distillation first (step 3).")
    with ctx.storage.db.session() as s:
        folder = ctx.storage.store.local(job_rows.get(s, viewer, int(run_id)).folder)  # theirs, or NotFoundError
    name = name or "student"
    lines = [try_model(folder, name, text).words()]
    if name != "teacher":
        lines.append(try_model(folder, "teacher", text).words().replace("**teacher**", "The teacher"))
    return "\n\n".join(lines)


def build_try_box(ctx: UIContext, run: gr.components.Component, model: gr.components.Component | None = None) -> TryBox:
    """Under a step whose ``run`` (a run id) and ``model`` (a model name; the student when None) are chosen."""
    with gr.Accordion("Try it: type a text, see what the model answers", open=False):
        with gr.Row():
            text = gr.Textbox(label="A text like the ones it will get", lines=2, scale=4)
            button = gr.Button("Try", scale=1)
        said = gr.Markdown(elem_classes=["try-said"])

    def on_try(run_id, name, typed, request: gr.Request = None):
        return tried(ctx, ctx.viewer(request), run_id, name, typed)

    def on_try_student(run_id, typed, request: gr.Request = None):
        return tried(ctx, ctx.viewer(request), run_id, None, typed)

    if model is None:
        on_try, inputs = on_try_student, [run, text]
    else:
        inputs = [run, model, text]
    button.click(on_try, inputs, said)
    text.submit(on_try, inputs, said)
    return TryBox(text, button, said)
