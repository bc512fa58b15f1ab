"""What every step needs: the storage, and who is asking."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from storage.config import Storage
from storage.errors import StorageError
from storage.jobs import Viewer
from storage.records import local_user
from studio.errors import StudioError


@dataclass
class UIContext:
    storage: Storage
    _local: Viewer | None = None

    def viewer(self, request: gr.Request | None = None) -> Viewer:
        """The laptop install has one local user; the hosted mode (issue 6) maps the login to a user.
        Looked up once: the timers ask on every tick."""
        if self._local is None:
            self._local = local_user(self.storage.db)
        return self._local


def message_of(err: Exception) -> str:
    """The plain-language message a user sees (never a traceback)."""
    if isinstance(err, (StudioError, StorageError)):
        return str(err)
    return f"Something went wrong ({type(err).__name__}). The details are in the server log."


def error_box(text: str) -> str:
    return "\n".join(f"> ⚠️ {line}" if i == 0 else f"> {line}" for i, line in enumerate(text.splitlines()))
