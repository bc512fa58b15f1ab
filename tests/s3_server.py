"""A real S3-compatible server for tests: moto's standalone server (`python -m moto.server`, from the moto package
on PyPI), started over HTTP on a free port the way postgres_server.py starts PostgreSQL, stopped at the end.

What it covers: the S3 API the studio uses (buckets, PUT/GET/HEAD/DELETE of objects, listings with prefixes and
delimiters, object metadata, access keys), over real HTTP through boto3. What it does not: durability (it keeps
objects in memory), real S3's or MinIO's consistency under load, multipart uploads above 5 GB, and checking
signatures (any key is accepted).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    def __init__(self) -> None:
        self.port = _free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> S3Server:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto's S3 server did not start")

    def new_bucket(self) -> str:
        """A fresh bucket; the store URL the studio takes for it (keys are checked by real servers only)."""
        import boto3

        name = f"studio-{uuid.uuid4().hex[:12]}"
        client = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{self.port}",
            aws_access_key_id="test",
            aws_secret_access_key="secret",
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=name)
        return f"s3://test:secret@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None
