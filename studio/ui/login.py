"""Logging in and out of a hosted studio: the login page, throttled password checks, server-side sessions.

- Attempts are counted per account and per client address with the `limits` library (moving windows,
  in this server's memory) before any password is checked, so a flood of guesses costs no Argon2 time and
  gets a clear "try again in N minutes". A correct password clears the account's count.
- Argon2 runs on one thread of its own, never on the pool that serves pages, with a short bounded queue:
  a burst of logins cannot stall other users or the health check.
- Three limits: one account from one address (a guesser locks the account for their own address only), one
  account from all addresses (only a guessing attack from many addresses reaches it), one address over all
  accounts (password spraying).
- A login opens a session row (storage/sessions.py); the browser holds a random token in an HttpOnly,
  SameSite=Lax cookie; over HTTPS it is Secure and named __Host-…, which no other site of the domain can set.
  Logout is a POST and ends every session of the user.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from html import escape

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from limits import parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from storage.config import Storage
from storage.sessions import end_session, end_sessions_of, open_session
from studio.accounts import MAX_PASSWORD, check_login
from studio.hosting import HostSettings

COOKIE = "slm_studio_session"


def cookie_name(scheme: str) -> str:
    """Over HTTPS the __Host- prefix: the browser takes it only from this host, Secure, for the whole site."""
    return f"__Host-{COOKIE}" if scheme == "https" else COOKIE


MAX_WAITING = 16
"""Password checks that may wait for the Argon2 thread; more are told the server is busy."""
log = logging.getLogger("studio.login")


@dataclass(frozen=True)
class Outcome:
    status: int
    message: str
    token: str | None = None
    retry_after_s: int = 0


class Logins:
    def __init__(self, storage: Storage, settings: HostSettings) -> None:
        self.storage, self.settings = storage, settings
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.per_account = parse_many(settings.login_limit_account)
        self.per_account_total = parse_many(settings.login_limit_account_total)
        self.per_address = parse_many(settings.login_limit_address)
        self.argon2 = ThreadPoolExecutor(max_workers=1, thread_name_prefix="argon2")
        self.waiting = 0

    async def attempt(self, name: str, password: str, address: str) -> Outcome:
        account = name.strip().lower()[:128]
        scopes = [
            (self.per_account, ("account", account, address), "for this account from your address"),
            (self.per_account_total, ("account", account), "for this account"),
            (self.per_address, ("address", address), "from your address"),
        ]
        blocked = [(limit, key, whose) for limits, key, whose in scopes for limit in limits if not self.limiter.test(limit, *key)]
        if blocked:  # counted only when it is let through: a locked-out client cannot extend its own lock
            wait = max(self._retry_after(limit, key) for limit, key, _ in blocked)
            log.warning("login throttled (%s): %r from %s", blocked[0][2], account, address)
            return Outcome(
                429,
                f"Too many login attempts {blocked[0][2]}. Try again in {_minutes(wait)}, or ask "
                "your administrator to check the account.",
                retry_after_s=wait,
            )
        for limits, key, _ in scopes:
            for limit in limits:
                self.limiter.hit(limit, *key)
        if self.waiting >= MAX_WAITING:
            return Outcome(503, "The server is busy checking other logins. Try again in a few seconds.", retry_after_s=5)
        self.waiting += 1
        try:
            viewer = await asyncio.get_running_loop().run_in_executor(
                self.argon2, check_login, self.storage.db, name.strip(), password[: MAX_PASSWORD + 1]
            )
        finally:
            self.waiting -= 1
        if viewer is None:
            log.info("login failed for %r from %s", account, address)
            return Outcome(400, "Incorrect user name or password.")
        for limit in self.per_account:  # the right password: what was guessed at this account so far is forgotten
            self.limiter.clear(limit, "account", account, address)
        for limit in self.per_account_total:
            self.limiter.clear(limit, "account", account)
        token = open_session(self.storage.db, viewer.user_id, timedelta(hours=self.settings.session_hours), address)
        return Outcome(200, "Logged in.", token=token)

    def _retry_after(self, limit, key) -> int:
        import time

        reset, _ = self.limiter.get_window_stats(limit, *key)
        return max(1, int(reset - time.time()) + 1)


def _minutes(seconds: int) -> str:
    return f"{seconds} seconds" if seconds < 90 else f"{round(seconds / 60)} minutes"


def add_login_routes(api: FastAPI, logins: Logins, owner_forgotten) -> None:
    """/login and /logout on the studio's own app (ahead of Gradio's, which never see a password)."""

    @api.get("/login", response_class=HTMLResponse)
    def login_page() -> HTMLResponse:
        return HTMLResponse(page("Log in", login_form()))

    @api.post("/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        name, password = str(form.get("username") or ""), str(form.get("password") or "")
        browser = "text/html" in request.headers.get("accept", "")
        if not name.strip() or not password:
            outcome = Outcome(400, "Give your user name and password.")
        else:
            outcome = await logins.attempt(name, password, request.client.host if request.client else "")
        headers = {"Retry-After": str(outcome.retry_after_s)} if outcome.retry_after_s else {}
        if outcome.token is None:
            if browser:
                return HTMLResponse(page("Log in", _said(outcome.message) + login_form(name[:64])), outcome.status, headers)
            return JSONResponse({"detail": outcome.message}, outcome.status, headers)
        answer = RedirectResponse("./", 303) if browser else JSONResponse({"success": True})
        https = request.url.scheme == "https"
        answer.set_cookie(
            cookie_name(request.url.scheme),
            outcome.token,
            path="/",
            httponly=True,
            samesite="lax",
            secure=https,
            max_age=int(logins.settings.session_hours * 3600),
        )
        return answer

    @api.get("/logout", response_class=HTMLResponse)
    def logout_page() -> HTMLResponse:  # a GET changes nothing: a link on another site cannot log anyone out
        return HTMLResponse(page("Log out", LOGOUT_FORM))

    @api.post("/logout")
    def logout(request: Request) -> Response:
        session = request.scope.get("studio.session")
        if session is not None:
            ended = end_sessions_of(logins.storage.db, session.viewer.user_id)
            owner_forgotten(session.viewer.user_id)
            log.info("logout of %r ended %d session(s)", session.user_name, ended)
        else:
            end_session(logins.storage.db, request.cookies.get(cookie_name(request.url.scheme)))
        browser = "text/html" in request.headers.get("accept", "")
        answer = RedirectResponse("login", 303) if browser else JSONResponse({"success": True})
        answer.delete_cookie(cookie_name(request.url.scheme), path="/", secure=request.url.scheme == "https")
        return answer


def _said(message: str) -> str:
    return f'<p class="said" role="alert">{escape(message)}</p>'


def login_form(name: str = "") -> str:
    return f"""<form method="post" action="login">
<label>User name <input name="username" value="{escape(name)}" autocomplete="username" required
{"" if name else "autofocus"}></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required
{"autofocus" if name else ""}></label>
<button type="submit">Log in</button></form>
<p class="note">Ask your administrator for an account. After a few wrong passwords, logins pause for a while.</p>"""


LOGOUT_FORM = """<form method="post" action="logout"><p>Log out of SLM Studio on every device?</p>
<button type="submit">Log out</button></form>"""


def page(title: str, body: str) -> str:
    """A page with nothing from outside this server (no scripts at all)."""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)} · SLM Studio</title>
<style>body{{font-family:system-ui,sans-serif;background:#f6f7f9;margin:0;display:flex;min-height:100vh;
align-items:center;justify-content:center}}main{{background:#fff;padding:32px;border-radius:12px;
box-shadow:0 2px 12px #0002;width:min(360px,90vw)}}h1{{font-size:1.4em;margin:0 0 16px}}label{{display:block;
margin:12px 0;font-weight:600}}input{{display:block;width:100%;box-sizing:border-box;padding:10px;margin-top:4px;
border:1px solid #bbb;border-radius:6px;font-size:1em}}button{{margin-top:8px;width:100%;padding:10px;border:0;
border-radius:6px;background:#2563eb;color:#fff;font-size:1em;font-weight:600;cursor:pointer}}
.said{{background:#fef2f2;color:#991b1b;padding:10px;border-radius:6px}}.note{{color:#555;font-size:.9em}}</style>
</head><body><main><h1>SLM Studio</h1>{body}</main></body></html>"""
