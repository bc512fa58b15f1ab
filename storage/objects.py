"""The shared half of the artifact store when workers run on several machines: an S3-compatible object store
(AWS S3, MinIO, Ceph, ...) through boto3. Each machine keeps its working copy in its local folder; the object store
holds what every machine sees (storage/artifacts.py pushes and pulls between the two).

    SLM_STUDIO_STORE_URL=s3://KEY:SECRET@host:9000/bucket[/prefix]     http to host:9000
    SLM_STUDIO_STORE_URL=s3+https://KEY:SECRET@host/bucket             https
    SLM_STUDIO_STORE_URL=s3://bucket                                   AWS itself, keys from AWS_* as boto3 reads them

Every object carries the SHA-256 of its bytes (object metadata), so a copy is checked without reading it, and a
file already there with the same checksum is neither sent nor fetched again. An object is written whole by one PUT
(the object store never shows half of one); a download goes to a temp file renamed into place.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from storage.errors import ArtifactError

SINGLE_PUT = 5 * 2**30
"""Files up to this size go up in one PUT (S3's own limit), so an object is never seen half-written."""


@dataclass(frozen=True)
class Remote:
    """One object: its size and the SHA-256 recorded with it ('' when another program wrote it)."""

    bytes: int
    sha256: str


@dataclass(frozen=True)
class Listed:
    """An object as a listing shows it: its size and when it was last written (seconds since the epoch)."""

    bytes: int
    modified: float


class ObjectStore:
    def __init__(self, url: str) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        parts = urlsplit(url)
        if parts.scheme not in ("s3", "s3+https", "s3+http") or not (parts.hostname or parts.path.strip("/")):
            raise ArtifactError(
                f"SLM_STUDIO_STORE_URL '{_hidden(url)}' is not an object store address. "
                "Write it as s3://KEY:SECRET@host:9000/bucket (or s3://bucket for AWS with its usual keys)."
            )
        on_aws = parts.port is None and "." not in (parts.hostname or "") and not parts.username
        if on_aws:  # s3://bucket/prefix
            self.bucket, self.prefix, endpoint = parts.hostname or "", parts.path.strip("/"), None
        else:
            bucket, _, prefix = parts.path.strip("/").partition("/")
            scheme = "https" if parts.scheme == "s3+https" else "http"
            self.bucket, self.prefix, endpoint = bucket, prefix.strip("/"), f"{scheme}://{parts.hostname}:{parts.port or 443}"
        if not self.bucket:
            raise ArtifactError(f"SLM_STUDIO_STORE_URL '{_hidden(url)}' names no bucket: add /bucket after the host.")
        self.where = f"{endpoint or 's3'}/{self.bucket}"
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=unquote(parts.username) if parts.username else None,
            aws_secret_access_key=unquote(parts.password) if parts.password else None,
            region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, s3={"addressing_style": "path"}),
        )
        self.transfer = TransferConfig(multipart_threshold=SINGLE_PUT)
        self._check()

    def _check(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as err:
            raise ArtifactError(
                f"The object store {self.where} cannot be used ({err}). Check SLM_STUDIO_STORE_URL: the host, "
                "the bucket (create it first) and the keys."
            ) from err

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def head(self, relative: str) -> Remote | None:
        from botocore.exceptions import ClientError

        try:
            found = self.client.head_object(Bucket=self.bucket, Key=self.key(relative))
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return Remote(found["ContentLength"], found.get("Metadata", {}).get("sha256", ""))

    def listing(self, relative: str) -> dict[str, Listed]:
        """Every object at or under ``relative`` ('' for all), by relative path."""
        prefix = self.key(relative)
        found: dict[str, Listed] = {}
        cut = len(self.prefix) + 1 if self.prefix else 0
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                name = item["Key"][cut:]
                if name == relative or not relative or name.startswith(relative.rstrip("/") + "/"):
                    found[name] = Listed(item["Size"], item["LastModified"].timestamp())
        return found

    def put(self, relative: str, path: Path, sha256: str) -> None:
        self.client.upload_file(
            str(path), self.bucket, self.key(relative), ExtraArgs={"Metadata": {"sha256": sha256}}, Config=self.transfer
        )

    def get(self, relative: str, target: Path) -> None:
        """Download to a temp file beside the target, renamed into place when whole."""
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        try:
            self.client.download_file(self.bucket, self.key(relative), tmp, Config=self.transfer)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def delete(self, names: list[str]) -> None:
        for start in range(0, len(names), 1000):  # S3 deletes at most 1,000 keys a request
            chunk = [{"Key": self.key(n)} for n in names[start : start + 1000]]
            if chunk:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True})

    def folders(self, relative: str) -> Iterator[str]:
        """The names of the folders directly under ``relative`` (e.g. the job folders under 'jobs')."""
        prefix = self.key(relative.rstrip("/") + "/")
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                yield common["Prefix"][len(prefix) :].rstrip("/")


def _hidden(url: str) -> str:
    """The address without its secret (error messages end up in logs)."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
