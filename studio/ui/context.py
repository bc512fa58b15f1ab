"""What every step needs: the storage, and who is asking."""

from __future__ import annotations

from dataclasses import dataclass, field

import gradio as gr

from storage.config import Storage
from storage.errors import StorageError
from storage.jobs import Viewer
from storage.records import find_user, local_user
from studio.errors import AccessError, StudioError


@dataclass
class UIContext:
    storage: Storage
    hosted: bool = False
    """Login required: every request acts for the logged-in user (else for the one local user)."""
    _local: Viewer | None = None
    _users: dict[str, Viewer] = field(default_factory=dict)

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
        if name not in self._users:
            with self.storage.db.session() as s:
                user = find_user(s, name)
                if user is None or not user.password_hash:
                    raise AccessError("This account no longer exists; log in again.")
                self._users[name] = Viewer(user.id, user.is_admin)
        return self._users[name]


def message_of(err: Exception) -> str:
    """The plain-language message a user sees (never a traceback)."""
    if isinstance(err, (StudioError, StorageError)):
        return str(err)
    return f"Something went wrong ({type(err).__name__}). The details are in the server log."


def error_box(text: str) -> str:
    return "\n".join(f"> ⚠️ {line}" if i == 0 else f"> {line}" for i, line in enumerate(text.splitlines()))
