"""A settings class's fields as browser controls: the label, help, choices and default come from the field."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

import gradio as gr

from studio.settings import choices_of, help_of, label_of

WIDTH = 220
"""The narrowest a control gets in a row (px): on a phone a row of them wraps instead of squeezing the help text."""

Build = Callable[[str, str, object], gr.components.Component]
"""(label, help, value) -> a control."""


def settings_controls(
    fields: Iterable[dataclasses.Field], values: dict, own: dict[str, Build] | None = None
) -> dict[str, gr.components.Component]:
    """One control per field, in the fields' order, by field name: a dropdown for choices, a checkbox for yes/no,
    a number box for numbers, a text box for the rest (and for settings that may be left empty).
    ``own``: the fields a step shows its own way."""
    controls = {}
    for field in fields:
        name, label, info, value = field.name, label_of(field), help_of(field), values[field.name]
        if own and name in own:
            controls[name] = own[name](label, info, value)
        elif choices_of(field):
            controls[name] = gr.Dropdown(list(choices_of(field)), value=value, label=label, info=info, min_width=WIDTH)
        elif isinstance(field.default, bool):
            controls[name] = gr.Checkbox(value=value, label=label, info=info, min_width=WIDTH)
        elif isinstance(field.default, str) or field.default is None:  # a number box cannot be empty: text can
            text = "" if value is None else value
            controls[name] = gr.Textbox(value=text, label=label, info=info, placeholder="auto", min_width=WIDTH)
        else:
            precision = 0 if isinstance(value, int) else None
            controls[name] = gr.Number(value=value, label=label, info=info, precision=precision, min_width=WIDTH)
    return controls
