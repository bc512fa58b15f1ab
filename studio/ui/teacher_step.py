"""Step 1, Teacher: the catalog (offline entries first), a local folder, or a hub id."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from studio.accounts import models_dir
from studio.errors import StudioError
from studio.jobs.service import check_endpoint_allowed
from studio.teacher import CATALOG, catalog_status, is_offline
from studio.teacher_cost import BATCH, LENGTH, known_cost, measure_cost
from studio.ui.context import UIContext
from studio.words import Task

SOURCES = [
    "Catalog (works offline)",
    "A folder on this machine",
    "A model hub id (needs the internet)",
    "A server you run (OpenAI-compatible)",
]
SERVED = "#"
"""A served teacher's spec: its address and the model's name, as 'http://host:port/v1#model-name'."""


@dataclass
class TeacherTab:
    source: gr.Radio
    catalog: gr.Dropdown
    folder: gr.Textbox
    hub_id: gr.Textbox
    server: gr.Textbox
    served: gr.Textbox
    info: gr.Markdown
    costs: gr.Dataframe
    measure: gr.Button
    chosen: gr.State
    """The teacher spec the later steps use: a catalog key, a folder path, a hub id or a served model (SERVED)."""


COST_HEADER = f"to teach your labels here ({BATCH} texts × {LENGTH} tokens a step)"
COST_TITLE = "**What it costs to teach it your labels on this machine:**"
CATALOG_HEADERS = ["key", "model", "task", "size", "licence", COST_HEADER, "status"]


def _cost_cell(key: str) -> str:
    cost = known_cost(key)
    if cost is None:
        return "not measured yet"
    if cost.head_only:
        return f"head only: {cost.minutes_per_thousand_texts:.1f} min per 1,000 texts; full: {cost.seconds_per_step:.2f} s a step"
    return f"{cost.seconds_per_step:.2f} s a step (≥ {cost.minimum_minutes:.0f} min a run)"


def catalog_rows() -> list[list[str]]:
    installed = sorted(CATALOG.values(), key=lambda e: catalog_status(e) != "installed")
    return [
        [e.key, e.title, e.task, f"{e.params_millions:.1f} M", e.licence, _cost_cell(e.key), catalog_status(e)] for e in installed
    ]


def measure_here(described: str, spec: str | None) -> tuple[str, list[list[str]]]:
    """Time a few real fine-tune steps of the chosen teacher on this machine (about a minute at most)."""
    if not spec:
        return described + "\n\n> ⚠️ Choose a teacher that can be used before measuring it.", catalog_rows()
    try:
        cost = measure_cost(spec)
    except StudioError as err:
        return described + f"\n\n> ⚠️ It could not be measured: {err}", catalog_rows()
    head = described.split(f"\n\n{COST_TITLE}")[0]
    return f"{head}\n\n{COST_TITLE} {cost.words()}", catalog_rows()


def describe(
    source: str,
    key: str | None,
    folder: str,
    hub_id: str,
    only_under: Path | None = None,
    server: str = "",
    served: str = "",
) -> tuple[str, str | None]:
    """(what the user sees about the choice, the spec to use or None when it cannot be used).
    `only_under`: a hosted studio lets users pick folders in the shared models folder only."""
    folder, hub_id = folder or "", hub_id or ""  # a hidden box sends nothing
    if source == SOURCES[3]:
        return describe_server((server or "").strip().rstrip("/"), (served or "").strip())
    if source == SOURCES[0]:
        if not key or key not in CATALOG:
            return "Choose a teacher from the catalog.", None
        entry = CATALOG[key]
        memory = entry.params_millions * 4 / 1000  # fp32 weights; training needs about 3-4x this
        status = catalog_status(entry)
        text = (
            f"**{entry.title}** — {entry.task.replace('_', ' ')}, {entry.params_millions:.1f} M parameters, "
            f"about {memory:.2f} GB in memory to run, {3 * memory:.1f}–{4 * memory:.1f} GB to fine-tune. "
            f"Licence: {entry.licence}."
        )
        if entry.terms_notice:
            text += f"\n\n{entry.terms_notice}"
        if entry.task == Task.CAUSAL_LM:
            text += (
                "\n\nIt can also teach a **classifier**: it gets a classification head, reads your texts once and "
                "only the head is fitted to your labels (minutes, not hours; *teacher training* 'full' in step 3 "
                "fine-tunes every weight instead), then a small encoder student (minilm-l6) learns its answers."
            )
        cost = known_cost(key)
        text += (
            f"\n\n{COST_TITLE} {cost.words()}"
            if cost
            else f"\n\n{COST_TITLE} not measured yet (*Measure* times a few real training steps; under a minute)."
        )
        if status != "installed":
            return text + f"\n\n> ⚠️ Its weights are {status}.", None
        return text, key
    if source == SOURCES[1]:
        path = Path(folder.strip()).expanduser() if folder.strip() else None
        if path is not None and only_under is not None and not path.resolve().is_relative_to(only_under.resolve()):
            return (
                f"> ⚠️ In this hosted studio, model folders come from the shared models folder {only_under} "
                "(ask your administrator to put the model there)."
            ), None
        if path is None or not (path / "config.json").is_file():
            return "Give the path of a model folder (it holds config.json and .safetensors weights).", None
        if not any(path.glob("*.safetensors")):
            return f"> ⚠️ {path} has no .safetensors weights. Only safetensors files are loaded (never pickles).", None
        return f"Folder **{path}** — checked when the distillation starts.", str(path)
    if not hub_id.strip():
        return "Give a model hub id such as `org/model-name`.", None
    if is_offline():
        return "> ⚠️ This studio runs offline, so hub models cannot be downloaded. Use the catalog or a folder.", None
    return f"Hub model **{hub_id.strip()}** — downloaded when the distillation starts (safetensors only).", hub_id.strip()


def describe_server(address: str, model: str) -> tuple[str, str | None]:
    if not address.startswith(("http://", "https://")) or not model:
        return (
            "Give the address of an OpenAI-compatible server you run (e.g. `http://127.0.0.1:8080/v1` for llama.cpp's "
            "`llama-server`, or vLLM's) and the name of the model it serves.",
            None,
        )
    try:
        check_endpoint_allowed(address)
    except StudioError as err:
        return f"> ⚠️ {err}", None
    return (
        f"**{model}** served at **{address}** — it is *asked* to label your texts (classification only): it reads your "
        "label names and a few of your labelled texts, and its scores over the label names are its answers. Nothing "
        "is trained on the server; the student (MiniLM) learns those answers here. **Your texts are sent to that "
        "address.**",
        f"{address}{SERVED}{model}",
    )


def build_teacher_tab(ctx: UIContext) -> TeacherTab:
    gr.Markdown("### 1. Choose a teacher\nThe big model whose knowledge the small student learns.")
    costs = gr.Dataframe(catalog_rows(), headers=CATALOG_HEADERS, interactive=False, label="Offline catalog")
    source = gr.Radio(SOURCES, value=SOURCES[0], label="Where the teacher comes from")
    first = next(iter(CATALOG))
    catalog = gr.Dropdown(list(CATALOG), value=first, label="Catalog teacher")
    folder = gr.Textbox(label="Model folder", visible=False)
    hub_id = gr.Textbox(label="Hub id", visible=False)
    with gr.Row(visible=False) as served_row:
        server = gr.Textbox(label="Server address", placeholder="http://127.0.0.1:8080/v1")
        served = gr.Textbox(label="Model name on the server")
    text, spec = describe(SOURCES[0], first, "", "")
    info = gr.Markdown(text)
    measure = gr.Button("Measure what the chosen teacher costs to teach here", size="sm")
    chosen = gr.State(spec)

    def update(src: str, key: str | None, path: str, hub: str, address: str, name: str):
        text, spec = describe(src, key, path, hub, models_dir() if ctx.hosted else None, address, name)
        return (
            gr.update(visible=src == SOURCES[0]),
            gr.update(visible=src == SOURCES[1]),
            gr.update(visible=src == SOURCES[2]),
            gr.update(visible=src == SOURCES[3]),
            text,
            spec,
        )

    for trigger in (source.change, catalog.change, folder.change, hub_id.change, server.change, served.change):
        trigger(update, [source, catalog, folder, hub_id, server, served], [catalog, folder, hub_id, served_row, info, chosen])
    measure.click(measure_here, [info, chosen], [info, costs], concurrency_limit=1, concurrency_id="measure-cost")
    return TeacherTab(source, catalog, folder, hub_id, server, served, info, costs, measure, chosen)
