"""Step 2, Data: drop a file, see its first rows, what was detected (changeable), the check in plain
words, and the class balance."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import gradio as gr
from gradio.data_classes import FileData
from gradio.utils import NamedString
from gradio_client import utils as client_utils

from storage.records import get_dataset
from studio.charts import class_balance_figure
from studio.data_files import iter_rows
from studio.dataset import DatasetOptions, DatasetReport
from studio.jobs import service
from studio.ui.context import UIContext, error_box, shows_errors
from studio.words import Task

DETECT = "(detect)"
TASKS = [DETECT, Task.CLASSIFICATION, Task.CAUSAL_LM]
FILE_TYPES = [".csv", ".tsv", ".jsonl", ".json", ".txt", ".parquet"]


def dataset_file(label: str = "Dataset file", elem_id: str = "dataset-upload") -> gr.File:
    """A file drop that hands the handler the uploaded file's path, and nothing else: Gradio's own gr.File
    (type='filepath') opens an empty temporary file in its cache on every event and leaves it there. (Set on
    the one component, not by a subclass: Gradio writes a .pyi stub beside the module of any subclass.)"""
    upload = gr.File(label=label, file_types=FILE_TYPES, type="filepath", elem_id=elem_id)

    def path_only(f: FileData) -> NamedString:
        if not client_utils.is_valid_file(f.path, FILE_TYPES):
            raise gr.Error(f"Upload a file of one of these types: {', '.join(FILE_TYPES)}.")
        return NamedString(f.path)

    upload._process_single_file = path_only
    return upload


@dataclass
class DataTab:
    upload: gr.File
    test_upload: gr.File
    unlabelled_upload: gr.File
    task: gr.Dropdown
    text_column: gr.Dropdown
    label_column: gr.Dropdown
    prompt_column: gr.Dropdown
    response_column: gr.Dropdown
    recheck: gr.Button
    report: gr.Markdown
    preview: gr.Dataframe
    balance: gr.Plot
    dataset_id: gr.State


@dataclass
class Checked:
    report: str
    preview: list[list[str]]
    headers: list[str]
    balance: object | None
    dataset_id: int | None
    columns: list[str]
    task: str | None = None
    """What the checked file is for; None before a file passed."""


def preview_rows(path: Path, rows: int = 10) -> tuple[list[str], list[list[str]]]:
    _, _, items = iter_rows(path)
    head = [row for _, row in islice(items, rows)]
    headers = list(head[0]) if head else []
    return headers, [[str(r.get(h, ""))[:200] for h in headers] for r in head]


def report_text(report: DatasetReport) -> str:
    cols = ", ".join(f"{role} = `{column}`" for role, column in report.roles())
    task = (
        "sorting texts into labels (classification)"
        if report.task == Task.CLASSIFICATION
        else "learning to write text like yours (causal language model)"
    )
    lines = [
        f"**{report.rows_used:,} of {report.rows_read:,} rows are ready** for {task}.",
        f"Columns used: {cols}. File: {report.format.upper()}, {report.encoding.replace('_', '-').upper()}.",
        "Split: "
        + ", ".join(f"{n} {k}" for k, n in report.split_sizes.items())
        + "."
        + "".join(f" The {k} rows are your own file {name}." for k, name in report.own_splits.items())
        + (f" {report.split_note}" if report.split_note else ""),
    ]
    if report.label_counts:
        lines.append(f"{len(report.label_counts)} labels.")
    if report.unlabelled:
        where = f" (with those of your file {report.unlabelled_file})" if report.unlabelled_file else ""
        lines.append(
            f"**{report.unlabelled:,} texts without a label**{where}: the teacher labels them and the student learns "
            "from its answers too (step 3, *Learn from texts without a label*). Tests and checks use labelled rows only."
        )
    elif report.unlabelled_file:
        lines.append(f"No text of your file {report.unlabelled_file} could be kept (see the notes below).")
    lines += [f"- ⚠️ {w}" for w in report.warnings]
    return "\n\n".join(lines[:3]) + ("\n\n" + "\n".join(lines[3:]) if lines[3:] else "")


@shows_errors(lambda message: Checked(error_box(message), [], [], None, None, []))
def check_file(
    ctx: UIContext,
    viewer,
    path: str | None,
    task: str = DETECT,
    text_column: str = DETECT,
    label_column: str = DETECT,
    prompt_column: str = DETECT,
    response_column: str = DETECT,
    test_path: str | None = None,
    unlabelled_path: str | None = None,
) -> Checked:
    """Check an uploaded file (and the user's own test file and file of texts without a label, when given);
    the dataset is stored only when all pass."""
    if not path:
        return Checked("Drop a CSV, TSV, JSON Lines, TXT or Parquet file above.", [], [], None, None, [])
    file = Path(path)

    def given(value: str) -> str | None:
        return None if value in (DETECT, "", None) else value

    headers, rows = preview_rows(file)
    options = DatasetOptions(
        task=given(task),
        text_column=given(text_column),
        label_column=given(label_column),
        prompt_column=given(prompt_column),
        response_column=given(response_column),
    )
    dataset_id = service.add_dataset(
        ctx.storage,
        viewer,
        file,
        options,
        name=file.name,
        test_file=Path(test_path) if test_path else None,
        unlabelled_file=Path(unlabelled_path) if unlabelled_path else None,
    )
    with ctx.storage.db.session() as s:
        report = DatasetReport(**get_dataset(s, viewer, dataset_id).report)
    balance = class_balance_figure(report.label_counts) if report.label_counts else None
    return Checked(report_text(report), rows, headers, balance, dataset_id, report.columns, report.task)


def build_data_tab(ctx: UIContext) -> DataTab:
    gr.Markdown("### 2. Your data\nDrop a file of your own texts. Nothing leaves this machine.")
    upload = dataset_file()
    with gr.Accordion("Your own test file (optional)", open=False):
        gr.Markdown(
            "By default a tenth of your file is held out to test the models. If you have a test set of "
            "your own (same columns), drop it here and all of the main file is used to train."
        )
        test_upload = dataset_file("Test file", "test-upload")
    with gr.Accordion("Texts without a label (optional)", open=False):
        gr.Markdown(
            "A file of texts alone (a text column, or a .txt file with one text per line): the teacher labels them "
            "and the student learns from its answers. Many of them help when you have few labels."
        )
        unlabelled_upload = dataset_file("Texts without a label", "unlabelled-upload")
    with gr.Row():
        task = gr.Dropdown(TASKS, value=DETECT, label="Task")
        text_column = gr.Dropdown([DETECT], value=DETECT, label="Text column")
        label_column = gr.Dropdown([DETECT], value=DETECT, label="Label column")
        prompt_column = gr.Dropdown([DETECT], value=DETECT, label="Prompt column")
        response_column = gr.Dropdown([DETECT], value=DETECT, label="Response column")
    recheck = gr.Button("Check again with these settings", interactive=False)
    report = gr.Markdown("Drop a CSV, TSV, JSON Lines, TXT or Parquet file above.")
    preview = gr.Dataframe(label="First rows", interactive=False)
    balance = gr.Plot(label="Class balance", visible=False)
    dataset_id = gr.State(None)
    column_boxes = [text_column, label_column, prompt_column, response_column]

    # request before *args: Gradio fills only the arguments ahead of them
    def run(path, test_path, unlabelled_path, request: gr.Request, *choices):
        viewer = ctx.viewer(request)
        if any(p and not ctx.owns_upload(request, p) for p in (path, test_path, unlabelled_path)):
            checked = Checked(
                error_box("That file is not one you uploaded in this session; drop it here again."), [], [], None, None, []
            )
        else:
            checked = check_file(ctx, viewer, path, *choices, test_path=test_path, unlabelled_path=unlabelled_path)
        # a classifier's file has no prompt and response to choose, a text generator's no label
        shown = {
            "label": checked.task != Task.CAUSAL_LM,
            "prompt": checked.task != Task.CLASSIFICATION,
            "response": checked.task != Task.CLASSIFICATION,
        }
        column_updates = [
            gr.update(choices=[DETECT, *checked.columns], visible=shown.get(role, True))
            for role in ("text", "label", "prompt", "response")
        ]
        return (
            checked.report,
            gr.update(value=checked.preview, headers=checked.headers or None),
            gr.update(value=checked.balance, visible=checked.balance is not None),
            checked.dataset_id,
            gr.update(interactive=bool(path)),
            *column_updates,
        )

    inputs = [upload, test_upload, unlabelled_upload, task, *column_boxes]
    outputs = [report, preview, balance, dataset_id, recheck, *column_boxes]
    for drop in (upload, test_upload, unlabelled_upload):
        drop.change(run, inputs, outputs)
    recheck.click(run, inputs, outputs, api_name="check_dataset")
    return DataTab(upload, test_upload, unlabelled_upload, task, *column_boxes, recheck, report, preview, balance, dataset_id)
