"""What every step needs: the storage, and who is asking."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import gradio as gr

from storage.config import Storage
from storage.errors import StorageError
from storage.jobs import Viewer
from storage.records import find_user, local_user
from studio.errors import AccessError, StudioError

RECHECK_USER_S = 30.0
"""A disabled account or a changed admin flag takes effect on open pages within this time."""


@dataclass
class UIContext:
    storage: Storage
    hosted: bool = False
    """Login required: every request acts for the logged-in user (else for the one local user)."""
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


def message_of(err: Exception) -> str:
    """The plain-language message a user sees (never a traceback)."""
    if isinstance(err, (StudioError, StorageError)):
        return str(err)
    return f"Something went wrong ({type(err).__name__}). The details are in the server log."


def error_box(text: str) -> str:
    return "\n".join(f"> ⚠️ {line}" if i == 0 else f"> {line}" for i, line in enumerate(text.splitlines()))
