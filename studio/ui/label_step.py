"""Under the Distill step: the texts a finished run is unsure of, to label in place; one click starts the next round,
and a chart shows each round's validation macro-F1 (studio.jobs.rounds)."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from studio.charts import rounds_figure
from studio.jobs.rounds import SKIP, label_and_train_again, questions_of, rounds
from studio.labelling import QUESTIONS
from studio.ui.context import UIContext, error_box, shows_errors

TEXT_SHOWN = 400


@dataclass
class LabelBox:
    box: gr.Column
    intro: gr.Markdown
    choices: list[gr.Radio]
    start: gr.Button
    said: gr.Markdown
    chart: gr.Plot


def intro_words(asked: int, by_you: int, labelled: int) -> str:
    so_far = f" You have labelled {by_you:,} texts here so far ({labelled:,} labelled texts in all)." if by_you else ""
    return (
        "### Label what the studio is unsure of\n"
        f"This run asks about {asked} of your texts without a label: those the teacher and the student disagree on, "
        "and those the teacher is least sure of. Label the ones you are sure of (skip the rest) and start the next "
        "round: the teacher and the student learn from your labels too, and the chart below shows what each round "
        f"gained.{so_far}"
    )


def question_info(q) -> str:
    teacher = f"{q.teacher} ({q.teacher_confidence:.0%} sure)"
    return f"The teacher says {teacher}, the student {q.student} ({q.student_confidence:.0%}): {q.why}."


def _cut(text: str) -> str:
    return text if len(text) <= TEXT_SHOWN else text[:TEXT_SHOWN].rsplit(" ", 1)[0] + " …"


def build_label_box(ctx: UIContext, job_id: gr.State, finished: gr.Markdown) -> LabelBox:
    """``job_id``: the distillation the Distill step follows (a new round's job becomes it); ``finished``: its
    result card, which changes when a run ends."""
    with gr.Column(visible=False, elem_id="label-box") as box:
        intro = gr.Markdown()
        choices = [gr.Radio([], label="", visible=False, elem_classes=["label-question"]) for _ in range(QUESTIONS)]
        start = gr.Button("Add my labels and train again", variant="primary")
        said = gr.Markdown()
    chart = gr.Plot(label="Each round of labelling", visible=False, elem_id="rounds-chart")
    texts = gr.State([])

    def show(current, request: gr.Request = None):
        viewer = ctx.viewer(request)
        labels, questions = questions_of(ctx.storage, viewer, current) if current else ([], [])
        chain = rounds(ctx.storage, viewer, current) if current else []
        slots = [
            gr.update(visible=True, label=_cut(q.text), info=question_info(q), choices=[*labels, SKIP], value=None)
            if i < len(questions)
            else gr.update(visible=False, value=None)
            for i, q in enumerate(questions + [None] * (QUESTIONS - len(questions)))
        ]
        last = chain[-1] if chain else None
        words = intro_words(len(questions), last.by_you if last else 0, last.labels if last else 0) if questions else ""
        figure = rounds_figure(chain) if len(chain) >= 2 else None
        return (
            gr.update(visible=bool(questions)),
            words,
            *slots,
            "",
            gr.update(value=figure, visible=figure is not None),
            [q.text for q in questions],
        )

    @shows_errors(lambda message: (gr.update(), error_box(message)))
    def on_start(current, asked, request: gr.Request, *answers):  # request before *args: Gradio fills only those
        chosen = {text: label for text, label in zip(asked, answers) if label}
        new_job = label_and_train_again(ctx.storage, ctx.viewer(request), current, chosen)
        given = sum(1 for label in chosen.values() if label != SKIP)
        return new_job, (
            f"Round started as job {new_job} with your {given} new label(s). The teacher and the student train again; "
            "this page follows it, and asks again when it is done."
        )

    shown = [box, intro, *choices, said, chart, texts]
    finished.change(show, [job_id], shown)
    job_id.change(show, [job_id], shown)
    start.click(on_start, [job_id, texts, *choices], [job_id, said])
    return LabelBox(box, intro, choices, start, said, chart)
