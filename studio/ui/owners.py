"""What belongs to whom inside the web server: the files each login uploaded, and the page sessions
(Gradio's session hashes) each login opened.

Gradio accepts any path a request names and any session hash it is given; the studio does not. A file is
usable only by the login that uploaded it (in this server's lifetime), and a page session only by the
login that opened it, so another user can neither read a file by naming its path nor act in someone
else's page by guessing its hash. An "owner" is one login (hosted) or the one local user (a laptop).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

KEEP_S = 86400.0
"""As long as Gradio keeps its cached copy of an upload (app.py: delete_cache)."""


class Owners:
    def __init__(self, upload_folder: str | Path) -> None:
        self.upload_folder = Path(upload_folder).resolve()
        self._files: dict[str, dict[str, float]] = {}
        self._pages: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- uploaded files

    def record_uploads(self, owner: str, paths: list[str]) -> None:
        now = time.monotonic()
        with self._lock:
            mine = self._files.setdefault(owner, {})
            for path in paths:
                resolved = self._inside(path)
                if resolved is not None:
                    mine[str(resolved)] = now

    def owns_file(self, owner: str | None, path: str | None) -> bool:
        """True only for a file this owner uploaded (and Gradio still keeps)."""
        if not owner or not path:
            return False
        resolved = self._inside(path)
        if resolved is None:
            return False
        with self._lock:
            since = self._files.get(owner, {}).get(str(resolved))
        return since is not None and time.monotonic() - since < KEEP_S and resolved.is_file()

    def upload_bytes(self, user_id: int) -> int:
        """What a user's uploads still in Gradio's cache take (they count towards the user's quota)."""
        prefix, now = f"{user_id}:", time.monotonic()
        with self._lock:
            paths = {p for owner, files in self._files.items() if owner.startswith(prefix)
                     for p, since in files.items() if now - since < KEEP_S}
        return sum(Path(p).stat().st_size for p in paths if Path(p).is_file())

    def _inside(self, path: str) -> Path | None:
        try:
            resolved = Path(path).resolve()
        except (OSError, ValueError):
            return None
        return resolved if resolved.is_relative_to(self.upload_folder) else None

    # ----------------------------------------------------------------- page sessions

    def claim_page(self, owner: str, session_hash: str) -> bool:
        """Bind a page session to the owner that uses it first; False when it is someone else's."""
        now = time.monotonic()
        with self._lock:
            if len(self._pages) > 10_000:  # pages closed long ago: drop them
                self._pages = {p: (o, t) for p, (o, t) in self._pages.items() if now - t < KEEP_S}
            first, _ = self._pages.get(session_hash, (owner, now))
            if first != owner:
                return False
            self._pages[session_hash] = (owner, now)
            return True

    # ----------------------------------------------------------------- logins that end

    def forget_user(self, user_id: int) -> None:
        """A user logged out everywhere: their uploads and pages are nobody's now."""
        prefix = f"{user_id}:"
        with self._lock:
            for owner in [o for o in self._files if o.startswith(prefix)]:
                del self._files[owner]
            for page in [p for p, (o, _) in self._pages.items() if o.startswith(prefix)]:
                del self._pages[page]


def owner_key(user_id: int | None, session_id: int | None) -> str:
    """One login's key ('<user id>:<session id>'); the laptop's one user is 'local'."""
    return "local" if session_id is None else f"{user_id}:{session_id}"
