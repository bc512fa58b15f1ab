"""Where storage lives, from environment variables (the hosted Docker image sets them; a laptop uses defaults).

SLM_STUDIO_HOME      root folder of everything local          (default ~/.slm-studio)
SLM_STUDIO_DB_URL    any SQLAlchemy URL                       (default sqlite:///$HOME/studio.db)
SLM_STUDIO_DATA_DIR  the artifact store                       (default $HOME/artifacts)
SLM_STUDIO_STORE_URL an S3-compatible object store shared by workers on several machines (default none: the
                     folder alone); the folder is then this machine's working copy (storage/objects.py)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from storage.artifacts import ArtifactStore
from storage.db import Database, sqlite_url
from storage.objects import ObjectStore


def studio_home() -> Path:
    return Path(os.environ.get("SLM_STUDIO_HOME", Path.home() / ".slm-studio")).expanduser()


@dataclass(frozen=True)
class StorageConfig:
    db_url: str
    data_dir: Path
    store_url: str = ""

    @classmethod
    def from_env(cls) -> StorageConfig:
        home = studio_home()
        return cls(
            db_url=os.environ.get("SLM_STUDIO_DB_URL") or sqlite_url(home / "studio.db"),
            data_dir=Path(os.environ.get("SLM_STUDIO_DATA_DIR") or home / "artifacts").expanduser(),
            store_url=os.environ.get("SLM_STUDIO_STORE_URL", ""),
        )


@dataclass
class Storage:
    """The database (schema upgraded) and the artifact store, opened together."""

    db: Database
    store: ArtifactStore
    config: StorageConfig


def open_storage(config: StorageConfig | None = None) -> Storage:
    config = config or StorageConfig.from_env()
    db = Database(config.db_url)
    db.check_current()
    db.upgrade()
    remote = ObjectStore(config.store_url) if config.store_url else None
    return Storage(db, ArtifactStore(config.data_dir, remote), config)
