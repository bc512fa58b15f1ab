"""The shared shape of every step's settings: a dataclass, validated as a whole, stored as JSON.

A subclass lists its range checks in ``checks()``; every failed check is reported at once, each
naming the setting, its value and the allowed range. Unknown keys are an error, not ignored.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Self

from studio.errors import ConfigError

Check = tuple[str, bool, str]
"""(setting name, whether its value is fine, the allowed values in words)."""


class Settings:
    def checks(self) -> list[Check]:
        return []

    def other_problems(self) -> list[str]:
        """Problems that involve several settings at once."""
        return []

    def __post_init__(self) -> None:
        problems = [f"{name} is {getattr(self, name)!r}; use {allowed}" for name, ok, allowed in self.checks() if not ok]
        problems += self.other_problems()
        if problems:
            raise ConfigError(problems)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Self:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError([f"unknown setting '{k}'; known settings: {', '.join(sorted(known)) or 'none'}"
                               for k in unknown])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
