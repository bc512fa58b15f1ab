"""The artifact store: a folder on disk addressed by relative paths. Files are written atomically
(temp file + rename, so a crash never leaves half a file under the real name) and checksummed."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from storage.errors import ArtifactError

CHUNK = 1 << 20


@dataclass(frozen=True)
class StoredFile:
    path: str
    """Relative to the store root, with forward slashes."""
    sha256: str
    bytes: int


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class ArtifactStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)

    def resolve(self, relative: str) -> Path:
        """The absolute path of a stored name; refuses anything that would leave the store."""
        rel = PurePosixPath(relative.replace("\\", "/"))
        if rel.is_absolute() or not rel.parts or any(part in ("..", "") for part in rel.parts):
            raise ArtifactError(f"'{relative}' is not a valid artifact path (it must stay inside the store).")
        path = (self.root / rel).resolve()
        if not path.is_relative_to(self.root):
            raise ArtifactError(f"'{relative}' points outside the artifact store.")
        return path

    def relative(self, path: Path) -> str:
        resolved = Path(path).resolve()
        if not resolved.is_relative_to(self.root):
            raise ArtifactError(f"{path} is not inside the artifact store {self.root}.")
        return resolved.relative_to(self.root).as_posix()

    def write_bytes(self, relative: str, data: bytes) -> StoredFile:
        """Write a file atomically and return its checksum."""
        target = self.resolve(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return StoredFile(relative, hashlib.sha256(data).hexdigest(), len(data))

    def import_file(self, source: Path, relative: str) -> StoredFile:
        """Copy a file into the store atomically (the upload path: the copy gets a generated name)."""
        target = self.resolve(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.describe(relative)

    def describe(self, relative: str) -> StoredFile:
        path = self.resolve(relative)
        if not path.is_file():
            raise ArtifactError(f"The artifact {relative} is missing from {self.root}.")
        return StoredFile(relative, sha256_of(path), path.stat().st_size)

    def files_under(self, relative: str) -> Iterator[StoredFile]:
        """Every finished file in a folder (temp files of unfinished writes are skipped)."""
        folder = self.resolve(relative)
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not _unfinished(path.relative_to(folder)):
                yield self.describe(self.relative(path))

    def bytes_under(self, relative: str) -> int:
        """Everything a folder takes on disk, unfinished writes included (what a quota counts)."""
        folder = self.resolve(relative)
        if folder.is_file():
            return folder.stat().st_size
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())

    def verify(self, stored: StoredFile) -> None:
        """Raise if the file is missing or its bytes changed since it was recorded."""
        now = self.describe(stored.path)
        if now.sha256 != stored.sha256 or now.bytes != stored.bytes:
            raise ArtifactError(
                f"The artifact {stored.path} has changed on disk since it was recorded "
                "(checksum mismatch). Re-run the job that made it."
            )

    def delete(self, relative: str) -> None:
        """Remove a file or a whole folder; missing is fine (deleting twice is not an error)."""
        path = self.resolve(relative)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _unfinished(rel: Path) -> bool:
    return any(part.startswith(".") or part.endswith(".tmp") for part in rel.parts)
