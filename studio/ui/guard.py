"""The one door of the web server: every request passes here before the studio or Gradio sees it.

Gradio's own checks are not the studio's (mounted in FastAPI, Gradio skips its file-path check), so this
guard decides, for each request, itself:

1. **Which routes exist.** Only the routes the studio's page and `gradio_client` use; Gradio's other routes
   (proxy, monitoring, run history, component server, ...) answer 404 without reaching Gradio.
2. **Who is asking.** Hosted: the session cookie, looked up in the database on every request (so a
   logout, a new password or a disabled account takes effect on the next request). No session: 401 (the
   page itself redirects to the login page). Only /login and /healthz are open.
3. **Where the request comes from.** A state-changing request sent by a page of another origin (the
   Origin header) is refused, unless that origin is in SLM_STUDIO_ALLOWED_ORIGINS.
4. **How big it is.** Uploads up to SLM_STUDIO_MAX_UPLOAD_MB, any other body up to SLM_STUDIO_MAX_REQUEST_KB,
   by declared size and by the bytes that actually arrive (chunked bodies too).
5. **What it names.** A file in an event's data, or in /gradio_api/file=, must be one this login uploaded;
   a page session (Gradio's session hash) must be one this login opened (studio/ui/owners.py).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
from starlette.datastructures import Headers
from starlette.formparsers import MultiPartException
from starlette.requests import cookie_parser
from starlette.responses import JSONResponse, RedirectResponse, Response

from storage.config import Storage
from storage.sessions import find_session
from studio.hosting import HostSettings
from studio.ui.login import cookie_name
from studio.ui.owners import Owners, owner_key

log = logging.getLogger("studio.guard")

OPEN = [("GET", r"/login"), ("POST", r"/login"), ("GET", r"/healthz"), ("GET", r"/favicon\.ico"), ("GET", r"/robots\.txt")]
"""Routes anyone may call."""

API = [
    ("POST", r"/api/v1/models/[a-z0-9][a-z0-9._-]{0,63}/classify"),
    ("POST", r"/v1/(chat/)?completions"),
    ("GET", r"/v1/models"),
    ("GET", r"/api/v1/health"),
    ("GET", r"/metrics"),
]
"""The served models' API: programs call it with a key, not a login session, and studio/serve/api.py checks the
key itself on every call; here it passes the size and origin checks like every other request."""

ROUTES = [
    ("GET", r"/"),
    ("GET", r"/config/?"),
    ("GET", r"/(assets|static|svelte)/.+"),
    ("GET", r"/(gradio_api/)?theme\.css"),
    ("GET", r"/manifest\.json"),
    ("GET", r"/gradio_api/(info|app_id|user|login_check|startup-events)/?"),
    ("POST", r"/gradio_api/queue/join"),
    ("GET", r"/gradio_api/queue/(data|status)"),
    ("GET", r"/gradio_api/heartbeat/[^/]+"),
    ("POST", r"/gradio_api/(cancel|reset)/?"),
    ("POST", r"/gradio_api/upload"),
    ("GET", r"/gradio_api/upload_progress"),
    ("GET", r"/gradio_api/file=.+"),
    ("GET", r"/download/[^/]+"),
    ("GET", r"/logout"),
    ("POST", r"/logout"),
]
"""Routes a logged-in user may call: the studio's own and the part of Gradio its page and gradio_client use."""

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
FORWARDED = {
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-forwarded-port",
    b"x-forwarded-prefix",
    b"forwarded",
    b"x-real-ip",
}
SESSION_HASH = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _compile(rules: list[tuple[str, str]]) -> list[tuple[str, re.Pattern]]:
    return [(method, re.compile(pattern + r"\Z", re.DOTALL)) for method, pattern in rules]


_OPEN, _ROUTES, _API = _compile(OPEN), _compile(ROUTES), _compile(API)


def _matches(rules, method: str, path: str) -> bool:
    method = "GET" if method == "HEAD" else method
    return any(m == method and p.match(path) for m, p in rules)


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class RequestGuard:
    def __init__(self, app: Callable[..., Awaitable[None]], *, storage: Storage, settings: HostSettings, owners: Owners) -> None:
        self.app, self.storage, self.settings, self.owners = app, storage, settings, owners
        self.idle = timedelta(minutes=settings.session_idle_minutes)

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] == "websocket":  # the studio uses none; nothing is served over one
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self.settings.trusted_proxies:  # nobody's X-Forwarded-Host may rewrite the page's own links
            scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() not in FORWARDED]
        try:
            receive = await self._admit(scope, receive)
        except Refused as refused:
            if refused.status != 401:  # repr and cut: a path cannot write lines of its own into the log
                log.warning(
                    "refused %s %.200r (%s): %s", scope["method"], scope["path"], scope.get("studio.owner"), refused.message
                )
            await self._refusal(scope, refused)(scope, receive, send)
            return
        if scope["path"] == "/gradio_api/upload":
            await self._answer_recorded(scope, receive, send, self._record_uploads)
        elif scope["path"] == "/gradio_api/queue/join":
            await self._answer_recorded(scope, receive, send, self._record_event)
        else:
            await self.app(scope, receive, send)

    # ----------------------------------------------------------------- the checks, in order

    async def _admit(self, scope: dict, receive):
        method, path = scope["method"], scope["path"]
        public = _matches(_OPEN, method, path) or _matches(_API, method, path)
        if not public and not _matches(_ROUTES, method, path):
            raise Refused(404, "Not found.")
        await self._identify(scope)
        if not public and scope.get("studio.owner") is None:
            raise Refused(401, "Log in first.")
        headers = Headers(scope=scope)
        if method in UNSAFE:
            self._check_origin(headers)
        if method in UNSAFE or headers.get("content-length"):
            receive = await self._bounded_body(scope, receive, headers)
        self._check_names(scope)
        return receive

    async def _identify(self, scope: dict) -> None:
        if not self.settings.hosted:
            scope["studio.owner"] = owner_key(None, None)
            return
        # Starlette's parser skips a malformed cookie instead of dropping the header (another app on the same
        # host must not be able to log the user out with one bad cookie)
        token = cookie_parser(Headers(scope=scope).get("cookie", "")).get(cookie_name(scope["scheme"]))
        if not token:
            return
        session = await anyio.to_thread.run_sync(find_session, self.storage.db, token, self.idle)
        if session is not None:
            scope["studio.session"] = session
            scope["studio.user"] = session.user_name
            scope["studio.owner"] = owner_key(session.viewer.user_id, session.id)

    def _check_origin(self, headers: Headers) -> None:
        """A browser sends Origin with every cross-origin POST (and Sec-Fetch-Site); programs (gradio_client, curl)
        send neither."""
        origins = headers.getlist("origin")
        if not origins:
            if headers.get("sec-fetch-site") == "cross-site":
                raise Refused(403, "Requests from other web sites are not accepted.")
            return
        origin = origins[0].rstrip("/")
        parts = urlsplit(origin)
        own = headers.get("host", "").lower()
        ours = parts.scheme in ("http", "https") and not parts.path and parts.netloc.lower() == own and own
        if len(origins) > 1 or not (ours or origin in self.settings.allowed_origins):
            raise Refused(403, "Requests from other web sites are not accepted.")

    async def _bounded_body(self, scope: dict, receive, headers: Headers):
        upload = scope["path"] == "/gradio_api/upload"
        limit = (self.settings.max_upload_mb + 1) * 1024 * 1024 if upload else self.settings.max_request_kb * 1024
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise Refused(413, _too_big(upload, int(declared), self.settings))
        if upload:  # streamed through (Gradio writes it to disk as it comes), counted on the way
            left = self._upload_room(scope)
            if left is not None and (left <= 0 or (declared.isdigit() and int(declared) > left)):
                raise Refused(413, QUOTA_FULL)
            free = shutil.disk_usage(self.owners.upload_folder).free - self.settings.min_free_mb * 1024 * 1024
            if free <= 0 or (declared.isdigit() and int(declared) > free):
                log.error("upload refused: the disk of %s is nearly full", self.owners.upload_folder)
                raise Refused(507, DISK_FULL)
            return _counting(receive, min(limit, free, left if left is not None else limit), self.settings)
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Refused(400, "The request ended early.")
            body += message.get("body", b"")
            if len(body) > limit:
                raise Refused(413, _too_big(False, len(body), self.settings))
            if not message.get("more_body"):
                break
        scope["studio.body"] = bytes(body)
        return _replay(bytes(body), receive)

    def _upload_room(self, scope: dict) -> int | None:
        """Bytes the caller may still upload today: what their uploads still in Gradio's cache (kept a day) take
        is capped at their storage quota, apart from what their datasets and jobs take."""
        session = scope.get("studio.session")
        if session is None or not self.settings.user_quota_mb:
            return None
        return self.settings.user_quota_mb * 1024 * 1024 - self.owners.upload_bytes(session.viewer.user_id)

    def _check_names(self, scope: dict) -> None:
        """Page sessions and files named by the request must be this login's own."""
        owner, path = scope.get("studio.owner"), scope["path"]
        if owner is None:
            return
        hashes: list[str] = []
        if path.startswith("/gradio_api/file="):
            if not self.owners.owns_file(owner, path[len("/gradio_api/file=") :]):
                raise Refused(404, "No such file.")  # the same answer whether or not it exists
        elif path.startswith("/gradio_api/heartbeat/"):
            hashes.append(path.rsplit("/", 1)[1])
        elif path == "/gradio_api/queue/data":
            hashes += parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_hash", [])
        elif "studio.body" in scope and path.startswith(("/gradio_api/queue/join", "/gradio_api/cancel", "/gradio_api/reset")):
            try:
                body = json.loads(scope["studio.body"] or b"{}")
            except ValueError:
                raise Refused(400, "The request body is not valid JSON.") from None
            if not isinstance(body, dict):
                raise Refused(400, "The request body must be a JSON object.")
            hashes.append(str(body.get("session_hash", "")))
            event = body.get("event_id")
            if path.startswith("/gradio_api/cancel") and event and not self.owners.owns_event(owner, str(event)):
                raise Refused(403, "That event is not yours.")
            for named in _file_paths(body):
                if not self.owners.owns_file(owner, named):
                    raise Refused(403, "That file is not one you uploaded in this session; upload it again.")
        for page in hashes:
            if not SESSION_HASH.match(page) or not self.owners.claim_page(owner, page):
                raise Refused(403, "That page session is not yours; reload the page.")

    # ----------------------------------------------------------------- uploads: who uploaded what

    async def _answer_recorded(self, scope: dict, receive, send, record: Callable[[dict, Any], None]) -> None:
        """Pass the request on, and note what Gradio's answer hands out (uploaded paths, an event id) as this
        login's before the answer reaches the browser (it names them in its very next request)."""
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k.lower() != b"accept-encoding"]  # plain JSON
        start: dict[str, Any] = {}
        body = bytearray()

        async def capture(message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            body.extend(message.get("body", b""))
            if message.get("more_body"):
                return
            if start.get("status") == 200:
                try:
                    record(scope, json.loads(bytes(body)))
                except ValueError:
                    pass
            await send(start)
            await send({"type": "http.response.body", "body": bytes(body)})

        await self.app(scope, receive, capture)

    def _record_uploads(self, scope: dict, answer) -> None:
        if isinstance(answer, list):
            self.owners.record_uploads(scope["studio.owner"], [p for p in answer if isinstance(p, str)])

    def _record_event(self, scope: dict, answer) -> None:
        if isinstance(answer, dict) and isinstance(answer.get("event_id"), str):
            self.owners.record_event(scope["studio.owner"], answer["event_id"])

    # ----------------------------------------------------------------- answers

    def _refusal(self, scope: dict, refused: Refused) -> Response:
        accepts_html = "text/html" in Headers(scope=scope).get("accept", "")
        if refused.status == 401 and scope["method"] in ("GET", "HEAD") and scope["path"] == "/" and accepts_html:
            return RedirectResponse("login", 303)
        return JSONResponse({"detail": refused.message}, refused.status)


def _counting(receive, limit: int, settings: HostSettings):
    """The request's own receive, counting bytes. Past the limit, or when the client goes away mid-upload, it
    raises the multipart parser's own error: Gradio then deletes the partial files it wrote (any other error
    would leave them in its cache) and answers 413 (or 400) with the message."""
    seen = 0

    async def counted():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.disconnect":
            raise MultiPartException("The upload was interrupted before it ended.")
        seen += len(message.get("body", b""))
        if seen > limit:
            raise MultiPartException(_too_big(True, 0, settings))
        return message

    return counted


def _replay(body: bytes, receive):
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: only a disconnect can come

    return replayed


def _file_paths(value) -> list[str]:
    """Every "path" of a file object anywhere in a request (Gradio's FileData)."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("path"), str):
                found.append(item["path"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


DISK_FULL = (
    "The disk the studio writes to is nearly full, so it takes no uploads now. Free some space, or tell "
    "the administrator (SLM_STUDIO_MIN_FREE_MB keeps that much free for everyone's jobs)."
)
QUOTA_FULL = (
    "Your uploads of the last day already take as much as your storage quota allows (the maximum allowed "
    "size, SLM_STUDIO_USER_QUOTA_MB). Uploaded files are kept for a day; try again later, or ask the "
    "administrator to raise the quota."
)


def _too_big(upload: bool, size: int, settings: HostSettings) -> str:
    if upload:
        shown = f"This upload is {size / 1024**2:,.0f} MB; t" if size else "T"
        return (
            f"{shown}he studio accepts files up to {settings.max_upload_mb:,} MB (the maximum allowed size). "
            "Upload a smaller file (or ask the administrator to raise SLM_STUDIO_MAX_UPLOAD_MB)."
        )
    return (
        f"This request is larger than the {settings.max_request_kb:,} KB the studio accepts "
        "(SLM_STUDIO_MAX_REQUEST_KB). Files go through the upload, not in a request."
    )
