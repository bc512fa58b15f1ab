"""The artifact store: a folder on disk addressed by relative paths. Files are written atomically
(temp file + rename, so a crash never leaves half a file under the real name) and checksummed.

With workers on several machines the folder is each machine's working copy, and an S3-compatible object store
(storage/objects.py, SLM_STUDIO_STORE_URL) holds what they share:

    push(path)    the one that wrote a file or folder sends it: what the object store lacks or holds otherwise
                  goes up, and objects of the folder no longer here are removed (it mirrors the writer's copy)
    pull(path)    a machine about to read brings what is newer there; it never removes or overwrites newer work
    local(path)   pull, then the local path: what a reader asks for
    delete(path)  here and there

A worker pulls a job's inputs before it starts and pushes the job's folder while it runs and when it ends
(studio/jobs/queue.py); an upload is pushed as soon as it is checked.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from storage.errors import ArtifactError
from storage.objects import ObjectStore, Remote

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


MARKERS = ("state.json", "complete", "READY")
"""Files that say a folder is whole (a checkpoint's state, a saved model's marker): pushed after the rest."""


class ArtifactStore:
    def __init__(self, root: str | Path, remote: ObjectStore | None = None) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.remote = remote
        """The object store shared with other machines, or None (one machine: the folder is the store)."""
        self._sums: dict[tuple[str, int, int], str] = {}
        """SHA-256 by (path, size, mtime): a file unchanged since it was read is not read again."""

    def sha256(self, path: Path) -> str:
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        if key not in self._sums:
            self._sums[key] = sha256_of(path)
        return self._sums[key]

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
        stored = StoredFile(relative, hashlib.sha256(data).hexdigest(), len(data))
        if self.remote is not None:
            self.remote.put(relative, target, stored.sha256)
        return stored

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
        stored = self.describe(relative)
        if self.remote is not None:
            self.remote.put(relative, target, stored.sha256)
        return stored

    def describe(self, relative: str) -> StoredFile:
        path = self.resolve(relative)
        if not path.is_file():
            raise ArtifactError(f"The artifact {relative} is missing from {self.root}.")
        return StoredFile(relative, self.sha256(path), path.stat().st_size)

    def files_under(self, relative: str) -> Iterator[StoredFile]:
        """Every finished file in a folder (temp files of unfinished writes are skipped)."""
        folder = self.resolve(relative)
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not _unfinished(path.relative_to(folder)):
                yield self.describe(self.relative(path))

    def bytes_under(self, relative: str) -> int:
        """Everything a folder takes on disk, unfinished writes included (what a quota counts); with an object
        store, what it holds there (every machine's work)."""
        if self.remote is not None:
            return sum(found.bytes for found in self.remote.listing(relative).values())
        folder = self.resolve(relative)
        if folder.is_file():
            return folder.stat().st_size
        return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())

    def verify(self, stored: StoredFile) -> None:
        """Raise if the file is missing or its bytes changed since it was recorded (with an object store: its
        copy there, checked by the checksum it was stored with, without reading it)."""
        if self.remote is not None:
            found = self.remote.head(stored.path)
            if found is None:
                raise ArtifactError(f"The artifact {stored.path} is missing from {self.remote.where}.")
            now = StoredFile(stored.path, found.sha256, found.bytes)
        else:
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
        if self.remote is not None:
            self.remote.delete(list(self.remote.listing(relative)))

    # ------------------------------------------------------------------ shared with other machines

    def push(self, relative: str) -> int:
        """Send a file, or a folder's finished files, to the object store; returns how many went up."""
        if self.remote is None:
            return 0
        path = self.resolve(relative)
        mine = [path] if path.is_file() else self._finished(path)
        mine.sort(key=lambda p: (p.name in MARKERS, str(p)))  # a folder's marker goes up once the rest is there
        there = self.remote.listing(relative)
        sent = 0
        for file in mine:
            name = self.relative(file)
            try:
                sha = self.sha256(file)
                if (
                    name in there
                    and there[name].bytes == file.stat().st_size
                    and self.remote.head(name) == Remote(there[name].bytes, sha)
                ):
                    continue
                self.remote.put(name, file, sha)
                sent += 1
            except FileNotFoundError:
                continue  # the job removed it meanwhile (an older checkpoint): it is not part of the folder now
        kept = {self.relative(f) for f in mine if f.exists()}
        self.remote.delete([name for name in there if name not in kept])
        return sent

    def pull(self, relative: str) -> int:
        """Bring a file or folder from the object store: files missing here, or older here than there. Nothing
        here is removed, and a newer local file (work not pushed yet) is kept. Returns how many came."""
        if self.remote is None:
            return 0
        came = 0
        for name, there in self.remote.listing(relative).items():
            target = self.resolve(name)
            if target.is_file():
                if target.stat().st_mtime >= there.modified:
                    continue  # written here since (or fetched since it was last written there)
                if target.stat().st_size == there.bytes:
                    found = self.remote.head(name)
                    if found is None or not found.sha256 or found.sha256 == self.sha256(target):
                        continue
            self.remote.get(name, target)
            came += 1
        return came

    def local(self, relative: str) -> Path:
        """The local path of a stored file or folder, brought from the object store first when there is one."""
        self.pull(relative)
        return self.resolve(relative)

    def folders_under(self, relative: str) -> set[str]:
        """Names of the folders directly under ``relative``, here and in the object store."""
        folder = self.resolve(relative)
        here = {p.name for p in folder.iterdir() if p.is_dir()} if folder.is_dir() else set()
        return here | (set(self.remote.folders(relative)) if self.remote is not None else set())

    def _finished(self, folder: Path) -> list[Path]:
        if not folder.is_dir():
            return []
        return [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink() and not _unfinished(p.relative_to(folder))]


def _unfinished(rel: Path) -> bool:
    return any(part.startswith(".") or part.endswith(".tmp") for part in rel.parts)
