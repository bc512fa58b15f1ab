"""Engine, sessions and schema upgrades. One URL picks the database: SQLite file by default, any
SQLAlchemy URL (PostgreSQL for a hosted team) otherwise."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from storage.errors import DatabaseError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path).expanduser().resolve()}"


def _tune_sqlite(dbapi_conn, _record) -> None:
    """WAL lets the web app read while a worker writes; FULL makes each commit survive a power cut (a
    delete whose files are gone must not come back); foreign keys make deletes cascade."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _private_file(path: Path) -> None:
    """Create the SQLite file readable by its owner only (its -wal and -shm files take the same mode)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))


class Database:
    """A connection pool plus a session factory for one URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        sqlite = make_url(url).get_backend_name() == "sqlite"
        # a pooled server connection can go stale (a PostgreSQL restart); a SQLite file's cannot, and a ping before
        # every checkout would be a second query for each API call
        self.engine: Engine = create_engine(url, pool_pre_ping=not sqlite)
        if sqlite:
            if self.engine.url.database not in (None, "", ":memory:"):
                _private_file(Path(self.engine.url.database))
            event.listen(self.engine, "connect", _tune_sqlite)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One unit of work: committed when the block ends, rolled back on any error."""
        with self._sessions.begin() as session:
            yield session

    def upgrade(self, revision: str = "head") -> None:
        """Bring the schema to `revision` (the app does this on start; it is a no-op when current)."""
        try:
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":  # two workers starting at once: one migrates, one waits
                    conn.execute(text("SELECT pg_advisory_xact_lock(5135101)"))
                cfg = alembic_config(self.url)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
        except OperationalError as err:
            raise DatabaseError(
                f"Cannot open the database at {self.engine.url.render_as_string(hide_password=True)}: "
                f"{err.orig}. Check the URL (SLM_STUDIO_DB_URL) and that the server is running."
            ) from err

    def revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def check_current(self) -> None:
        """Refuse a schema this code does not know (written by a newer studio)."""
        current = self.revision()
        known = {s.revision for s in ScriptDirectory.from_config(alembic_config(self.url)).walk_revisions()}
        if current is not None and current not in known:
            raise DatabaseError(
                f"The database schema ({current}) is newer than this studio. "
                "Upgrade the studio, or point SLM_STUDIO_DB_URL at another database."
            )

    def integrity_problems(self) -> list[str]:
        """Database-level checks: SQLite's integrity and foreign-key checks; on other servers, orphans."""
        problems: list[str] = []
        with self.engine.connect() as conn:
            if self.engine.dialect.name == "sqlite":
                problems += [r[0] for r in conn.execute(text("PRAGMA integrity_check")) if r[0] != "ok"]
                problems += [f"broken reference: {tuple(r)}" for r in conn.execute(text("PRAGMA foreign_key_check"))]
            orphans = {
                "metrics without a job": "SELECT count(*) FROM metrics m LEFT JOIN jobs j ON j.id = m.job_id WHERE j.id IS NULL",
                "artifacts without a job": "SELECT count(*) FROM artifacts a LEFT JOIN jobs j ON j.id = a.job_id "
                "WHERE j.id IS NULL",
                "variants without a job": "SELECT count(*) FROM variants v LEFT JOIN jobs j ON j.id = v.job_id "
                "WHERE j.id IS NULL",
            }
            for label, sql in orphans.items():
                count = conn.execute(text(sql)).scalar_one()
                if count:
                    problems.append(f"{count} {label}")
        return problems

    def table_names(self) -> list[str]:
        return inspect(self.engine).get_table_names()

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg
