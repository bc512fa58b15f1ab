"""What every step needs: the storage, and who is asking."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from storage.config import Storage
from storage.errors import StorageError
from storage.jobs import Viewer
from storage.records import local_user
from studio.errors import AccessError, StudioError
from studio.ui.owners import Owners


@dataclass
class UIContext:
    storage: Storage
    hosted: bool = False
    """Login required: every request acts for the logged-in user (else for the one local user)."""
    owners: Owners | None = None
    """Who uploaded which file (the server's guard records them); None outside a server (tests, scripts)."""
    _local: Viewer | None = None

    def viewer(self, request: gr.Request | None = None) -> Viewer:
        """Who is asking, for a Gradio event (see viewer_for)."""
        return self.viewer_for(_scope(request))

    def viewer_for(self, scope: dict) -> Viewer:
        """Who sent the HTTP request of this ASGI scope: hosted, the session the server's guard found for it
        (looked up in the database, so a disabled account or a changed admin flag counts at once); else the one
        local user."""
        if not self.hosted:
            if self._local is None:
                self._local = local_user(self.storage.db)
            return self._local
        session = scope.get("studio.session")
        if session is None:
            raise AccessError("Log in first.")
        return session.viewer

    def owns_upload(self, request: gr.Request | None, path: str | None) -> bool:
        """A file path sent by a page: usable only if this login uploaded it (checked here as well as by the
        server's guard, so a handler never opens a path a request merely names)."""
        if self.owners is None:
            return True
        return self.owners.owns_file(_scope(request).get("studio.owner"), path)


def _scope(request: gr.Request | None) -> dict:
    """The ASGI scope of the HTTP request behind a Gradio event (where the guard put the session)."""
    return getattr(getattr(request, "request", None), "scope", None) or {}


def message_of(err: Exception) -> str:
    """The plain-language message a user sees (never a traceback). An unexpected error is logged with its
    traceback under a short reference, which the message gives, so the administrator can find it."""
    if isinstance(err, (StudioError, StorageError)):
        return str(err)
    reference = uuid.uuid4().hex[:8]
    logging.getLogger("studio.ui").error("unexpected error, reference %s", reference, exc_info=err)
    return (
        f"Something went wrong ({type(err).__name__}). Give your administrator the reference {reference}: "
        "the details are in the server log under it."
    )


def shows_errors(on_error: Callable[[str], Any]) -> Callable:
    """A page handler whose failure becomes the message the user sees, in one place: ``on_error(message)`` gives the
    handler's outputs then. Our own errors show as they are; anything else is logged with a reference the message
    gives (message_of), never shown as a traceback."""

    def wrap(handler: Callable) -> Callable:
        @functools.wraps(handler)  # Gradio reads the signature (gr.Request) through __wrapped__
        def run(*args, **kwargs):
            try:
                return handler(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - every failure becomes a message for the user
                return on_error(message_of(err))

        return run

    return wrap


def error_box(text: str) -> str:
    return "\n".join(f"> ⚠️ {line}" if i == 0 else f"> {line}" for i, line in enumerate(text.splitlines()))
