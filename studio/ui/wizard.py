"""The wizard follows its user: what they chose (teacher, dataset, preset) is kept per user in storage and put
back whenever a page opens, so a reload, a second tab or another machine shows the same place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from storage.errors import NotFoundError
from storage.records import get_dataset
from storage.wizard import remember, wizard_of
from studio.dataset import DatasetReport
from studio.teacher import CATALOG
from studio.ui.context import UIContext
from studio.ui.data_step import report_text
from studio.ui.distill_step import PRESET_WORDS
from studio.ui.teacher_step import SERVED, SOURCES


@dataclass
class Place:
    """Where the user was; None where they had not chosen, or their choice is gone (a deleted dataset)."""

    teacher: str | None = None
    dataset_id: int | None = None
    dataset_words: str | None = None
    preset: str | None = None


def place_of(ctx: UIContext, viewer) -> Place:
    with ctx.storage.db.session() as s:
        state = wizard_of(s, viewer)
        place = Place(teacher=state.get("teacher"), preset=state.get("preset"))
        if state.get("dataset_id") is not None:
            try:
                dataset = get_dataset(s, viewer, int(state["dataset_id"]))
            except NotFoundError:  # deleted since: start from no dataset
                dataset = None
            if dataset is not None:
                place.dataset_id = dataset.id
                place.dataset_words = (
                    f"Using **{dataset.name}**, checked earlier (drop another file to change it).\n\n"
                    + report_text(DatasetReport(**dataset.report))
                )
    if place.preset not in PRESET_WORDS:
        place.preset = None
    return place


def teacher_controls(spec: str | None) -> tuple:
    """Updates for the teacher step's (source, catalog, folder, hub id, server, model served) that choose ``spec``
    again; the step's own checks then run on it as if the user had picked it."""
    keep = gr.update()
    if not spec:
        return keep, keep, keep, keep, keep, keep
    if spec in CATALOG:
        return SOURCES[0], spec, keep, keep, keep, keep
    if spec.startswith(("http://", "https://")) and SERVED in spec:
        address, _, model = spec.rpartition(SERVED)
        return SOURCES[3], keep, keep, keep, address, model
    if Path(spec).is_absolute():
        return SOURCES[1], keep, spec, keep, keep, keep
    return SOURCES[2], keep, keep, spec, keep, keep


def remembers(ctx: UIContext, key: str):
    """An event handler that keeps the component's new value as this user's ``key``."""

    def keep(value, request: gr.Request = None) -> None:
        if key != "teacher" or value:  # an unusable teacher choice is not a place to come back to
            remember(ctx.storage.db, ctx.viewer(request), **{key: value})

    return keep
