"""Job history and artifacts: SQLAlchemy records, Alembic migrations, a checksummed file store.

Knows nothing of torch or gradio, so the web app and tools can read history without loading models.
"""

from storage.artifacts import ArtifactStore, StoredFile
from storage.config import Storage, StorageConfig, open_storage
from storage.db import Database
from storage.errors import ArtifactError, DatabaseError, JobStateError, NotFoundError, StorageError
from storage.jobs import Viewer

__all__ = [
    "ArtifactStore",
    "StoredFile",
    "Storage",
    "StorageConfig",
    "open_storage",
    "Database",
    "Viewer",
    "StorageError",
    "NotFoundError",
    "JobStateError",
    "ArtifactError",
    "DatabaseError",
]
