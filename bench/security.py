"""The hosted studio's limits, measured on this machine: logins under attack, and the largest datasets.

    python bench/security.py

Starts `python -m studio ui` as the container does (SLM_STUDIO_AUTH=users, default settings), then:
1. 30 wrong passwords for one account from one address, then the right one from there and from elsewhere:
   how many were checked, and whether the right password got in;
2. one address guessing 30 different accounts;
3. the health check's latency at rest and during 40 parallel wrong logins from 40 addresses;
4. a dataset at the row limit accepted, and one row more refused (and how long each took);
5. a 100,000-row Parquet bomb: its size and how quickly it is refused.
Every figure printed is measured in this run. Not part of the test suite.
"""

from __future__ import annotations

import concurrent.futures
import io
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # studio_http: the tests' own way of speaking HTTP to the studio

from studio_http import call, client, endpoints, file_data, upload  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(home: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SLM_STUDIO_")},
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "SLM_STUDIO_HOME": str(home),
        "SLM_STUDIO_AUTH": "users",
        "SLM_STUDIO_PORT": str(port),
        "SLM_STUDIO_ADMIN_USER": "admin",
        "SLM_STUDIO_ADMIN_PASSWORD": "bench-admin-secret",
    }
    log = open(home / "server.log", "wb")  # noqa: SIM115 - open for the server's lifetime
    server = subprocess.Popen(
        [sys.executable, "-m", "studio", "ui", "--no-worker"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}/"
    while True:
        try:
            if requests.get(url + "healthz", timeout=5).status_code == 200:
                return server, url
        except requests.ConnectionError:
            time.sleep(0.5)


def attempt(session: requests.Session, url: str, name: str, password: str) -> int:
    return session.post(url + "login", data={"username": name, "password": password}, timeout=60).status_code


def health_ms(url: str) -> float:
    started = time.perf_counter()
    requests.get(url + "healthz", timeout=60).raise_for_status()
    return (time.perf_counter() - started) * 1000


def check(session: requests.Session, url: str, name: str, content: bytes) -> tuple[str, float]:
    """Upload a file and run the data step's check on it; (what it said, seconds)."""
    path = upload(session, url, name, content).json()[0]
    fn = next(e["id"] for e in endpoints(session, url) if e["api_name"] == "check_dataset")
    started = time.perf_counter()
    answer = call(session, url, fn, [file_data(path, name), None, None, *["(detect)"] * 5], timeout=900)
    return answer.everything[:400], time.perf_counter() - started


def main() -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from storage.config import StorageConfig, open_storage
    from studio.accounts import add_user

    home = Path(tempfile.mkdtemp(prefix="slm-bench-security-"))
    storage = open_storage(StorageConfig(f"sqlite:///{home / 'studio.db'}", home / "artifacts"))
    for name in ("erin", "alice"):
        add_user(storage.db, name, f"{name}-secret-123")
    server, url = start(home)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    try:
        one = client("127.0.0.51")
        answers = [attempt(one, url, "erin", f"guess-{i}") for i in range(30)]
        right = attempt(one, url, "erin", "erin-secret-123")
        elsewhere = attempt(client("127.0.0.54"), url, "erin", "erin-secret-123")
        print(
            f"1. 30 wrong passwords for one account, one address: {answers.count(400)} checked, "
            f"{answers.count(429)} refused by the limit (429); then the right password from there: {right}, "
            f"from another address: {elsewhere}"
        )
        spray = client("127.0.0.52")
        sprayed = [attempt(spray, url, f"user{i}", "password-123") for i in range(30)]
        print(f"2. one address, 30 different accounts: {sprayed.count(400)} checked, {sprayed.count(429)} refused")

        rest = [health_ms(url) for _ in range(50)]
        during: list[float] = []
        with concurrent.futures.ThreadPoolExecutor(40) as pool:
            burst = [pool.submit(attempt, client(f"127.0.2.{i + 1}"), url, f"flood{i}", "x" * 20) for i in range(40)]
            while not all(f.done() for f in burst):
                during.append(health_ms(url))
            statuses = [f.result() for f in burst]
        print(
            f"3. /healthz at rest: median {statistics.median(rest):.1f} ms, max {max(rest):.1f} ms; during 40 "
            f"parallel wrong logins from 40 addresses: median {statistics.median(during):.1f} ms, max "
            f"{max(during):.1f} ms ({len(during)} checks); logins: {statuses.count(400)} checked, "
            f"{statuses.count(503)} told the server is busy"
        )

        alice = client("127.0.0.53")
        assert attempt(alice, url, "alice", "alice-secret-123") == 200
        rows = 1_000_000
        body = "".join(f"parcel {i} arrived late,{'ab'[i % 2]}\n" for i in range(rows))
        said, took = check(alice, url, "limit.csv", ("text,label\n" + body).encode())
        print(
            f"4. a CSV of {rows:,} rows ({len(body) / 1e6:.1f} MB): {'accepted' if 'rows are ready' in said else said}"
            f" in {took:.1f} s;",
            end=" ",
        )
        said, took = check(alice, url, "over.csv", ("text,label\n" + body + "one row more,a\n").encode())
        print(f"{rows + 1:,} rows: {'refused' if 'up to 1,000,000' in said else said} in {took:.1f} s")

        table = pa.table({"text": ["Parcel lost again, refund please. " * 30] * 100_000, "label": ["a", "b"] * 50_000})
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        said, took = check(alice, url, "bomb.parquet", sink.getvalue())
        print(
            f"5. Parquet bomb, {len(sink.getvalue()) / 1024:.1f} KB holding {table.nbytes / 1e6:.0f} MB of text: "
            f"{'refused' if 'unpacks to more than' in said else said} in {took:.1f} s"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
