"""How a studio server is run: every setting an operator gives through the environment, in one place.

A container is configured without rebuilding it, so every field here is read from an environment
variable (named in its metadata), checked as a whole, and every problem is reported at once, naming the
variable and what to put there. The README's Security section lists the same settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from limits import parse_many

from storage.config import studio_home
from studio.errors import ConfigError

AUTH_MODES = ("none", "users")


def _setting(default, env: str, help: str, allowed: str):  # noqa: A002 - the field metadata's own word
    return field(default=default, metadata={"env": env, "help": help, "allowed": allowed})


@dataclass(frozen=True)
class HostSettings:
    auth: str = _setting(
        "none",
        "SLM_STUDIO_AUTH",
        "'none': a laptop, one local user, no login; 'users': a hosted studio, login required.",
        "'none' (one local user) or 'users' (login required)",
    )
    max_upload_mb: int = _setting(
        1024, "SLM_STUDIO_MAX_UPLOAD_MB", "The largest file a user may upload.", "a whole number of megabytes, e.g. 1024"
    )
    max_request_kb: int = _setting(
        1024,
        "SLM_STUDIO_MAX_REQUEST_KB",
        "The largest body of any other request (API calls carry settings, not files).",
        "a whole number of kilobytes, e.g. 1024",
    )
    max_dataset_rows: int = _setting(
        1_000_000,
        "SLM_STUDIO_MAX_DATASET_ROWS",
        "Rows one dataset may have (more never trains on a CPU anyway).",
        "a whole number of rows, e.g. 1000000",
    )
    max_dataset_mb: int = _setting(
        2048,
        "SLM_STUDIO_MAX_DATASET_MB",
        "The checked copy of one dataset on disk (a compressed file unpacks to more).",
        "a whole number of megabytes, e.g. 2048",
    )
    max_expansion: int = _setting(
        50,
        "SLM_STUDIO_MAX_EXPANSION",
        "How many times its own size a file may unpack to (beyond the first 16 MB): "
        "real data stays far below; a decompression bomb does not.",
        "a whole number, e.g. 50",
    )
    user_quota_mb: int = _setting(
        20480,
        "SLM_STUDIO_USER_QUOTA_MB",
        "Hosted: what one user's datasets and jobs may take on disk; 0 for no limit.",
        "a whole number of megabytes (0: no limit), e.g. 20480",
    )
    min_free_mb: int = _setting(
        2048,
        "SLM_STUDIO_MIN_FREE_MB",
        "Uploads stop while the disk has less than this free (kept for everyone's jobs).",
        "a whole number of megabytes, e.g. 2048",
    )
    session_hours: float = _setting(
        12.0, "SLM_STUDIO_SESSION_HOURS", "A login lasts at most this long.", "a number of hours from 0.1 to 720, e.g. 12"
    )
    session_idle_minutes: float = _setting(
        120.0,
        "SLM_STUDIO_SESSION_IDLE_MINUTES",
        "A login unused for this long ends (an open page keeps it in use).",
        "a number of minutes from 1 to 43200, e.g. 120",
    )
    login_limit_account: str = _setting(
        "5/minute;30/hour",
        "SLM_STUDIO_LOGIN_LIMIT_ACCOUNT",
        "Login attempts on one account from one client address.",
        "rates like '5/minute;30/hour'",
    )
    login_limit_account_total: str = _setting(
        "100/hour",
        "SLM_STUDIO_LOGIN_LIMIT_ACCOUNT_TOTAL",
        "Login attempts on one account from all addresses together (only a "
        "guessing attack from many addresses reaches it; it then locks the "
        "account for everyone until the hour has passed).",
        "rates like '100/hour'",
    )
    login_limit_address: str = _setting(
        "20/minute;200/hour",
        "SLM_STUDIO_LOGIN_LIMIT_ADDRESS",
        "Login attempts one client address may make (to all accounts together).",
        "rates like '20/minute;200/hour'",
    )
    allowed_origins: tuple[str, ...] = _setting(
        (),
        "SLM_STUDIO_ALLOWED_ORIGINS",
        "Other web origins whose pages may call the studio with a user's login (none by default: only the studio's own pages).",
        "a comma-separated list like 'https://intranet.example.com'",
    )
    teacher_endpoints: tuple[str, ...] = _setting(
        (),
        "SLM_STUDIO_TEACHER_ENDPOINTS",
        "Hosted: the OpenAI-compatible servers users may ask as a teacher (none by default: a hosted studio sends "
        "users' texts to no other server). A laptop studio asks whatever address its user gives.",
        "a comma-separated list like 'http://10.0.0.5:8080/v1'",
    )
    trusted_proxies: str = _setting(
        "",
        "SLM_STUDIO_TRUSTED_PROXIES",
        "Addresses of the TLS terminator / reverse proxy whose X-Forwarded-For and "
        "X-Forwarded-Proto headers are believed (none by default).",
        "a comma-separated list of IP addresses or networks, e.g. '10.0.0.5'",
    )
    models_dir: Path | None = _setting(
        None,
        "SLM_STUDIO_MODELS_DIR",
        "Hosted: the only folder users may pick model folders from "
        "(default $SLM_STUDIO_HOME/models, where converted teachers are kept).",
        "a folder path",
    )

    @property
    def hosted(self) -> bool:
        return self.auth == "users"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HostSettings:
        environ = os.environ if environ is None else environ
        values, problems = {}, []
        for f in fields(cls):
            raw = environ.get(f.metadata["env"], "")
            if not raw.strip():
                continue
            try:
                values[f.name] = _parse(f.name, raw.strip())
            except ValueError:
                problems.append(f"{f.metadata['env']} is '{raw}'; use {f.metadata['allowed']}")
        defaults = cls()
        for f in fields(cls):  # a value that did not parse is named once, not again by the range checks
            if f.name not in values and any(p.startswith(f.metadata["env"] + " ") for p in problems):
                values[f.name] = getattr(defaults, f.name)
        settings = cls(**values)
        problems += [p for p in settings.problems() if p not in problems]
        if problems:
            raise ConfigError(problems)
        return settings

    def problems(self) -> list[str]:
        bad = []
        if self.auth not in AUTH_MODES:
            bad.append("auth")
        for name in ("max_upload_mb", "max_request_kb", "max_dataset_rows", "max_dataset_mb", "max_expansion"):
            if getattr(self, name) <= 0:
                bad.append(name)
        for name in ("user_quota_mb", "min_free_mb"):
            if getattr(self, name) < 0:
                bad.append(name)
        if not 0.1 <= self.session_hours <= 720:
            bad.append("session_hours")
        if not 1 <= self.session_idle_minutes <= 43200:
            bad.append("session_idle_minutes")
        for name in ("login_limit_account", "login_limit_account_total", "login_limit_address"):
            try:
                if not parse_many(getattr(self, name)):
                    bad.append(name)
            except ValueError:
                bad.append(name)
        for origin in self.allowed_origins:
            if not origin.startswith(("http://", "https://")) or origin.count("/") != 2:
                bad.append("allowed_origins")
                break
        meta = {f.name: f.metadata for f in fields(self)}
        return [f"{meta[n]['env']} is '{_shown(getattr(self, n))}'; use {meta[n]['allowed']}" for n in bad]

    def shared_models_dir(self) -> Path:

        return (self.models_dir or studio_home() / "models").expanduser()


def _parse(name: str, raw: str):
    kind = {f.name: f.type for f in fields(HostSettings)}[name]
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    if kind == "tuple[str, ...]":
        return tuple(part.strip().rstrip("/") for part in raw.split(",") if part.strip())
    if kind == "Path | None":
        return Path(raw)
    return raw.lower() if name == "auth" else raw


def _shown(value) -> str:
    return ",".join(value) if isinstance(value, tuple) else str(value)


def settings_help() -> list[tuple[str, str, str]]:
    """(variable, default, what it does) for every setting: the README and `--help` list these."""
    return [
        (f.metadata["env"], _shown(f.default) if f.default is not None else "", f.metadata["help"]) for f in fields(HostSettings)
    ]
