"""The shared shape of every step's settings: a dataclass, validated as a whole, stored as JSON.

A field made with ``setting(default, help, ...)`` carries its help text (as TRL's configs do), its choices and
where it shows; the CLI's options and the browser's advanced controls are made from them, so a new setting is
one field. A subclass lists its range checks in ``checks()``; choices are checked from the fields. Every
failed check is reported at once, each naming the setting, its value and the allowed values. Unknown keys are
an error, not ignored.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Self

from studio.errors import ConfigError

Check = tuple[str, bool, str]
"""(setting name, whether its value is fine, the allowed values in words)."""


def setting(
    default: Any,
    help: str,
    *,
    choices: tuple[str, ...] = (),
    advanced: bool = True,
    flag: str = "",
    label: str = "",
    task: str | None = None,
) -> Any:
    """A settings field with what people read about it.

    ``help``: what it does and its trade-off. ``choices``: the words it takes (checked). ``advanced``: shown among
    the browser's advanced settings. ``flag``: the CLI option's name when not --the-field-name. ``label``: its
    name in the browser when not the field's name in words. ``task``: the one task it applies to (the browser
    hides it for the other); None for both."""
    metadata = {"help": help, "choices": choices, "advanced": advanced, "flag": flag, "label": label, "task": task}
    return dataclasses.field(default=default, metadata=metadata)


def help_of(field: dataclasses.Field) -> str:
    return field.metadata.get("help", "")


def applies_to(field: dataclasses.Field, task: str) -> bool:
    return field.metadata.get("task") in (None, task)


def label_of(field: dataclasses.Field) -> str:
    return field.metadata.get("label") or field.name.replace("_", " ")


def choices_of(field: dataclasses.Field) -> tuple[str, ...]:
    return field.metadata.get("choices", ())


class Settings:
    def checks(self) -> list[Check]:
        return []

    def other_problems(self) -> list[str]:
        """Problems that involve several settings at once."""
        return []

    def type_problems(self) -> list[str]:
        """Each value against its field's type (an int is a fine float; a bool is not a number)."""
        problems = []
        for name, hint in typing.get_type_hints(type(self)).items():
            if name not in {f.name for f in dataclasses.fields(self)}:
                continue
            value = getattr(self, name)
            allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
            if not any(_fits(value, kind) for kind in allowed):
                names = " or ".join("nothing" if k is type(None) else _WORDS.get(k, k.__name__) for k in allowed)
                problems.append(f"{name} is {value!r}; it must be {names}")
        return problems

    def __post_init__(self) -> None:
        typed = self.type_problems()
        if typed:  # range checks would only trip over the wrong types
            raise ConfigError(typed)
        chosen = [
            (
                f.name,
                getattr(self, f.name) in choices_of(f) or (getattr(self, f.name) is None and f.default is None),
                _one_of(choices_of(f)),
            )
            for f in dataclasses.fields(self)
            if choices_of(f)
        ]
        problems = [f"{name} is {getattr(self, name)!r}; use {allowed}" for name, ok, allowed in chosen + self.checks() if not ok]
        problems += self.other_problems()
        if problems:
            raise ConfigError(problems)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Self:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError([f"unknown setting '{k}'; known settings: {', '.join(sorted(known)) or 'none'}" for k in unknown])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _one_of(choices: tuple[str, ...]) -> str:
    """'a', 'b' or 'c'."""
    quoted = [f"'{c}'" for c in choices]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1] if len(quoted) > 1 else quoted[0]


_WORDS = {float: "a number", int: "a whole number", bool: "true or false", str: "text"}


def _fits(value: object, kind: object) -> bool:
    if kind is type(None):
        return value is None
    if kind is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(kind, type) and isinstance(value, kind)
