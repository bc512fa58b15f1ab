"""What belongs to whom inside the web server: the files each login uploaded, the page sessions (Gradio's
session hashes) each login opened, and the events each login queued.

Gradio accepts any path a request names, any session hash and any event id it is given; the studio does
not. A file is usable only by the login that uploaded it (in this server's lifetime), a page session and
an event only by the login that opened or queued it, so another user can neither read a file by naming its
path nor act in (or cancel) someone else's page by guessing its ids. An "owner" is one login
('<user id>:<session id>'), or 'local' for the one user of a laptop install.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from pathlib import Path

KEEP_S = 86400.0
"""As long as Gradio keeps its cached copy of an upload (app.py: delete_cache)."""
PAGES_PER_USER = 500
"""Page sessions remembered per user (a page reload opens a new one); the oldest are forgotten first."""
EVENTS_PER_USER = 500


class Owners:
    def __init__(self, upload_folder: str | Path) -> None:
        self.upload_folder = Path(upload_folder).resolve()
        self._files: dict[str, dict[str, float]] = {}
        self._pages = _Bounded(PAGES_PER_USER)
        self._events = _Bounded(EVENTS_PER_USER)
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- uploaded files

    def record_uploads(self, owner: str, paths: list[str]) -> None:
        now = time.monotonic()
        with self._lock:
            mine = self._files.setdefault(owner, {})
            for path in paths:
                if self._inside(path) is not None:
                    mine[path] = now

    def owns_file(self, owner: str | None, path: str | None) -> bool:
        """True only for a file this owner uploaded (and Gradio still keeps), named exactly as Gradio named it."""
        if not owner or not path or self._inside(path) is None:
            return False
        with self._lock:
            since = self._files.get(owner, {}).get(path)
        return since is not None and time.monotonic() - since < KEEP_S and Path(path).is_file()

    def upload_bytes(self, user_id: int) -> int:
        """What a user's uploads still in Gradio's cache take (capped at the user's quota)."""
        prefix, now = f"{user_id}:", time.monotonic()
        with self._lock:
            paths = {
                p
                for owner, files in self._files.items()
                if owner.startswith(prefix)
                for p, since in files.items()
                if now - since < KEEP_S
            }
        return sum(Path(p).stat().st_size for p in paths if Path(p).is_file())

    def _inside(self, path: str) -> Path | None:
        """The path, if it is a plain absolute path inside Gradio's upload folder, written canonically: no URL
        (Gradio would fetch it), no '..', no '//', no link out of the folder."""
        if not isinstance(path, str) or not os.path.isabs(path) or os.path.normpath(path) != path:
            return None
        try:
            resolved = Path(path).resolve()
        except (OSError, ValueError):
            return None
        return resolved if resolved.is_relative_to(self.upload_folder) else None

    # ----------------------------------------------------------------- page sessions and events

    def claim_page(self, owner: str, session_hash: str) -> bool:
        """Bind a page session to the owner that uses it first; False when it is someone else's."""
        with self._lock:
            return self._pages.claim(owner, session_hash)

    def record_event(self, owner: str, event_id: str) -> None:
        with self._lock:
            self._events.claim(owner, event_id)

    def owns_event(self, owner: str, event_id: str) -> bool:
        with self._lock:
            return self._events.owner_of(event_id) == owner

    # ----------------------------------------------------------------- logins that end

    def forget_user(self, user_id: int) -> None:
        """A user logged out everywhere: their uploads, pages and events are nobody's now."""
        prefix = f"{user_id}:"
        with self._lock:
            for owner in [o for o in self._files if o.startswith(prefix)]:
                del self._files[owner]
            self._pages.forget(prefix)
            self._events.forget(prefix)


class _Bounded:
    """Keys (page sessions, event ids) bound to the owner that used them first, at most `per_user` per user:
    past that, the user's least recently used key is forgotten (O(1), whatever one user sends)."""

    def __init__(self, per_user: int) -> None:
        self.per_user = per_user
        self._owner: dict[str, str] = {}
        self._by_user: dict[str, OrderedDict[str, None]] = {}

    def claim(self, owner: str, key: str) -> bool:
        first = self._owner.get(key)
        if first is not None and first != owner:
            return False
        user = owner.split(":", 1)[0]
        mine = self._by_user.setdefault(user, OrderedDict())
        if first is None:
            self._owner[key] = owner
            if len(mine) >= self.per_user:
                oldest, _ = mine.popitem(last=False)
                self._owner.pop(oldest, None)
        mine[key] = None
        mine.move_to_end(key)
        return True

    def owner_of(self, key: str) -> str | None:
        return self._owner.get(key)

    def forget(self, prefix: str) -> None:
        for key in list(self._by_user.pop(prefix.rstrip(":"), {})):
            self._owner.pop(key, None)


def owner_key(user_id: int | None, session_id: int | None) -> str:
    """One login's key ('<user id>:<session id>'); the laptop's one user is 'local'."""
    return "local" if session_id is None else f"{user_id}:{session_id}"
