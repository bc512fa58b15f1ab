"""What every step needs: the storage, and who is asking."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field

import gradio as gr

from storage.config import Storage
from storage.errors import StorageError
from storage.jobs import Viewer
from storage.records import find_user, local_user
from studio.errors import AccessError, StudioError
from studio.ui.owners import Owners

RECHECK_USER_S = 30.0
"""A disabled account or a changed admin flag takes effect on open pages within this time."""


@dataclass
class UIContext:
    storage: Storage
    hosted: bool = False
    """Login required: every request acts for the logged-in user (else for the one local user)."""
    owners: Owners | None = None
    """Who uploaded which file (the server's guard records them); None outside a server (tests, scripts)."""
    _local: Viewer | None = None
    _users: dict[str, tuple[Viewer, float]] = field(default_factory=dict)

    def viewer(self, request: gr.Request | None = None) -> Viewer:
        """Who is asking. Looked up once per user: the timers ask on every tick."""
        if not self.hosted:
            if self._local is None:
                self._local = local_user(self.storage.db)
            return self._local
        return self.user_named(getattr(request, "username", None))

    def user_named(self, name: str | None) -> Viewer:
        if not name:
            raise AccessError("Log in first.")
        viewer, checked = self._users.get(name, (None, 0.0))
        if viewer is None or time.monotonic() - checked > RECHECK_USER_S:
            with self.storage.db.session() as s:
                user = find_user(s, name)
                if user is None or not user.password_hash:
                    self._users.pop(name, None)
                    raise AccessError("This account no longer exists or was disabled; ask your administrator.")
                viewer = Viewer(user.id, user.is_admin)
            self._users[name] = (viewer, time.monotonic())
        return viewer


    def owns_upload(self, request: gr.Request | None, path: str | None) -> bool:
        """A file path sent by a page: usable only if this login uploaded it (checked here as well as by the
        server's guard, so a handler never opens a path a request merely names)."""
        if self.owners is None:
            return True
        scope = getattr(getattr(request, "request", None), "scope", None) or {}
        return self.owners.owns_file(scope.get("studio.owner"), path)


def message_of(err: Exception) -> str:
    """The plain-language message a user sees (never a traceback). An unexpected error is logged with its
    traceback under a short reference, which the message gives, so the administrator can find it."""
    if isinstance(err, (StudioError, StorageError)):
        return str(err)
    reference = uuid.uuid4().hex[:8]
    logging.getLogger("studio.ui").error("unexpected error, reference %s", reference, exc_info=err)
    return (f"Something went wrong ({type(err).__name__}). Give your administrator the reference {reference}: "
            "the details are in the server log under it.")


def error_box(text: str) -> str:
    return "\n".join(f"> ⚠️ {line}" if i == 0 else f"> {line}" for i, line in enumerate(text.splitlines()))
