"""Login sessions: opened at login, looked up on every request, ended by logout, a new password, a
disabled account or time. Kept in the database, so every server process and the CLI see the same truth
(`users passwd` in a shell ends the sessions a running server holds)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update

from storage.db import Database
from storage.jobs import Viewer, as_utc
from storage.tables import LoginSession, User, utcnow

TOUCH_EVERY = timedelta(minutes=1)
"""last_seen_at is written at most this often: a page's timers must not turn every tick into a write."""


@dataclass(frozen=True)
class ActiveSession:
    id: int
    user_name: str
    viewer: Viewer


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def open_session(db: Database, user_id: int, lifetime: timedelta, address: str = "") -> str:
    """A new session for this user; returns the token for the browser (only its hash is stored)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with db.session() as s:
        s.execute(delete(LoginSession).where(LoginSession.expires_at < now))  # old rows go as new ones come
        s.add(
            LoginSession(
                token_hash=_digest(token),
                user_id=user_id,
                created_at=now,
                expires_at=now + lifetime,
                last_seen_at=now,
                address=address[:64],
            )
        )
    return token


def find_session(db: Database, token: str | None, idle: timedelta) -> ActiveSession | None:
    """The live session behind a token: not expired, not idle too long, its user still able to log in."""
    if not token or len(token) > 256:
        return None
    now = utcnow()
    with db.session() as s:
        row = s.execute(
            select(LoginSession, User)
            .join(User, User.id == LoginSession.user_id)
            .where(LoginSession.token_hash == _digest(token))
        ).first()
        if row is None:
            return None
        session, user = row
        seen = as_utc(session.last_seen_at)
        if as_utc(session.expires_at) <= now or seen + idle <= now or not user.password_hash:
            s.delete(session)
            return None
        if now - seen >= TOUCH_EVERY:
            s.execute(update(LoginSession).where(LoginSession.id == session.id).values(last_seen_at=now))
        return ActiveSession(session.id, user.name, Viewer(user.id, user.is_admin))


def end_session(db: Database, token: str | None) -> None:
    if token:
        with db.session() as s:
            s.execute(delete(LoginSession).where(LoginSession.token_hash == _digest(token)))


def end_sessions_of(db: Database, user_id: int) -> int:
    """End every session of a user (logout everywhere, a new password, a disabled account)."""
    with db.session() as s:
        return s.execute(delete(LoginSession).where(LoginSession.user_id == user_id)).rowcount


def expire_session(db: Database, session_id: int, at: datetime) -> None:
    """Move a session's expiry (an administrator's tool, and how the tests age a session)."""
    with db.session() as s:
        s.execute(update(LoginSession).where(LoginSession.id == session_id).values(expires_at=at))
