"""Accounts of a hosted studio: users in the users table, passwords hashed with Argon2 (argon2-cffi).

    SLM_STUDIO_AUTH            'none' (a laptop: one local user, no login) or 'users' (hosted: login)
    SLM_STUDIO_ADMIN_USER      with SLM_STUDIO_ADMIN_PASSWORD: the first admin, created at start when
    SLM_STUDIO_ADMIN_PASSWORD  missing (so a container needs no secret baked into its image)

The server's other settings (limits, sessions, origins) are in studio/hosting.py.
A new password or a disabled account ends the user's sessions at once (storage/sessions.py).
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from storage import records
from storage.db import Database
from storage.jobs import Viewer
from storage.sessions import end_sessions_of
from studio.errors import ConfigError
from studio.hosting import HostSettings

MIN_PASSWORD = 10
MAX_PASSWORD = 1024
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def models_dir() -> Path:
    return HostSettings.from_env().shared_models_dir()


def ready_for_logins(db: Database) -> None:
    """Hosted start: the admin from the environment exists, and somebody can log in."""
    admin_from_env(db)
    with db.session() as s:
        users = records.list_users(s)
    if not users:
        raise ConfigError(
            [
                "login is on (SLM_STUDIO_AUTH=users) but there are no users yet; add one with "
                "'python -m studio users add NAME --admin', or set SLM_STUDIO_ADMIN_USER and "
                "SLM_STUDIO_ADMIN_PASSWORD"
            ]
        )


def hash_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ConfigError(
            [f"the password has {len(password)} characters; use at least {MIN_PASSWORD} (and at most {MAX_PASSWORD})"]
        )
    return PasswordHasher().hash(password)


def add_user(db: Database, name: str, password: str, admin: bool = False) -> Viewer:
    problems = []
    if not NAME.fullmatch(name) or name == records.LOCAL_USER:
        problems.append(
            f"'{name}' cannot be a user name; use 1-64 letters, digits, '.', '_', '@' or '-' (and not '{records.LOCAL_USER}')"
        )
    with db.session() as s:
        if records.find_user(s, name) is not None:
            problems.append(f"a user named '{name}' already exists; choose another name or change their password")
    if problems:
        raise ConfigError(problems)
    return records.create_user(db, name, hash_password(password), is_admin=admin)


def change_password(db: Database, name: str, password: str) -> int:
    """A new password; every session of the user ends (returns how many)."""
    if not records.set_password(db, name, hash_password(password)):
        raise ConfigError([f"there is no user named '{name}' ('python -m studio users list' shows them)"])
    return _end_sessions(db, name)


def disable_user(db: Database, name: str) -> int:
    """The user can no longer log in and their sessions end at once (their work stays; an admin still sees it)."""
    if not records.set_password(db, name, None):
        raise ConfigError([f"there is no user named '{name}' ('python -m studio users list' shows them)"])
    return _end_sessions(db, name)


def _end_sessions(db: Database, name: str) -> int:
    with db.session() as s:
        user_id = records.find_user(s, name).id
    return end_sessions_of(db, user_id)


def check_login(db: Database, name: str, password: str) -> Viewer | None:
    """The user, when the password is theirs; None otherwise (no hint which of the two was wrong)."""
    hasher = PasswordHasher()
    if len(password) > MAX_PASSWORD:  # never hash megabytes for a login form
        return None
    with db.session() as s:
        user = records.find_user(s, name)
        stored = user.password_hash if user is not None else None
        viewer = Viewer(user.id, user.is_admin) if user is not None else None
    if not stored:
        _spend_the_same_time(hasher, password)  # an unknown name answers as slowly as a wrong password
        return None
    try:
        hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if hasher.check_needs_rehash(stored):
        records.set_password(db, name, hasher.hash(password))
    return viewer


@functools.cache
def _stand_in_hash() -> str:
    return PasswordHasher().hash("a stand-in that no password matches")


def _spend_the_same_time(hasher: PasswordHasher, password: str) -> None:
    try:
        hasher.verify(_stand_in_hash(), password)  # one verify, as for a real user
    except VerificationError:
        pass


def admin_from_env(db: Database) -> str | None:
    """Create the admin named in the environment if it does not exist yet; returns its name."""
    name, password = os.environ.get("SLM_STUDIO_ADMIN_USER"), os.environ.get("SLM_STUDIO_ADMIN_PASSWORD")
    if not name or not password:
        return None
    with db.session() as s:
        exists = records.find_user(s, name) is not None
    if not exists:
        add_user(db, name, password, admin=True)
    return name
