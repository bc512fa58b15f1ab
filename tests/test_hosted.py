"""The hosted instance over HTTP, started as the container starts it (`python -m studio ui`, configured by
environment variables): logins against the users table, and user B can neither list, open nor download
user A's work by the UI's API or by guessing ids and paths. Oversized uploads and a zip bomb are refused."""

import http.client
import io
import os
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import requests

from storage import records
from storage.config import open_storage
from storage.jobs import Viewer
from studio.accounts import add_user
from studio.jobs import service
from studio.jobs.runner import run_here

ROOT = Path(__file__).resolve().parent.parent
PASSWORDS = {"alice": "alice-secret-1", "bob": "bob-secret-22", "root": "admin-secret-333"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def hosted(studio_home, samples, tiny_bert, tmp_path):
    """Alice's finished run and export, made for real; then the server in its own process, login on."""
    storage = open_storage()
    alice = add_user(storage.db, "alice", PASSWORDS["alice"])
    data = tmp_path / "tickets.csv"
    data.write_text("\n".join((samples / "support_tickets.csv").read_text().splitlines()[:201]) + "\n")
    dataset = service.add_dataset(storage, alice, data)
    run = service.submit(storage, alice, "distill", {"dataset_id": dataset, "distill": {
        "teacher": str(tiny_bert), "student_layers": 1, "epochs": 1, "teacher_epochs": 1, "max_length": 32}},
        enqueue=False)
    assert run_here(storage, run) == "done"
    export = service.submit(storage, alice, "export", {"variant": "student", "onnx": False}, parent_id=run,
                            enqueue=False)
    assert run_here(storage, export) == "done"
    added = subprocess.run([sys.executable, "-m", "studio", "users", "add", "bob", "--password-stdin"],
                           input=PASSWORDS["bob"] + "\n", capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert added.returncode == 0 and "User bob added" in added.stdout, added.stderr
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLM_STUDIO_AUTH": "users", "SLM_STUDIO_PORT": str(port),
           "SLM_STUDIO_MAX_UPLOAD_MB": "64", "SLM_STUDIO_ADMIN_USER": "root",
           "SLM_STUDIO_ADMIN_PASSWORD": PASSWORDS["root"]}
    with open(tmp_path / "server.log", "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "studio", "ui", "--no-worker"], env=env, cwd=tmp_path,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while True:
        try:
            if requests.get(url + "healthz", timeout=5).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        assert server.poll() is None and time.time() < deadline, (tmp_path / "server.log").read_text()
        time.sleep(0.5)
    zip_path = storage.store.resolve(next(a.path for a in _artifacts(storage, alice, export) if a.kind == "export"))
    yield {"url": url, "storage": storage, "run": run, "export": export, "dataset": dataset, "zip": zip_path}
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        raise AssertionError("the server did not stop within 30 s of SIGTERM") from None


def _artifacts(storage, viewer, job_id):
    with storage.db.session() as s:
        return records.artifacts_of(s, viewer, job_id)


def login(url: str, name: str, password: str) -> requests.Session:
    session = requests.Session()
    answer = session.post(url + "login", data={"username": name, "password": password}, timeout=30)
    assert answer.status_code == 200, answer.text
    return session


def test_logins_are_checked_against_hashed_passwords(hosted):
    url = hosted["url"]
    for name, password in [("alice", "wrong-password"), ("nobody", "whatever-123"), ("local", "x"),
                           ("alice", PASSWORDS["bob"]), ("alice", ""), ("", "")]:
        answer = requests.post(url + "login", data={"username": name, "password": password}, timeout=30)
        assert answer.status_code in (400, 422) and "success" not in answer.text  # 422: a field left empty
        assert not answer.cookies
    with hosted["storage"].db.session() as s:
        stored = records.find_user(s, "alice").password_hash
    assert stored.startswith("$argon2id$") and PASSWORDS["alice"] not in stored
    assert requests.get(url + "healthz", timeout=30).json()["auth"] == "users"  # health needs no login
    assert requests.get(url + f"download/{hosted['export']}", timeout=30).status_code == 401
    assert requests.post(url + "gradio_api/call/history", json={"data": [1]}, timeout=30).status_code == 401
    assert requests.get(url + "config", timeout=30).status_code == 401  # the app's layout needs a login too


def test_each_user_sees_and_downloads_only_their_own_work(hosted):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    url, export, run = hosted["url"], hosted["export"], hosted["run"]
    alice = login(url, "alice", PASSWORDS["alice"])
    mine = alice.get(url + f"download/{export}", timeout=60)
    assert mine.status_code == 200 and mine.content == hosted["zip"].read_bytes()
    assert zipfile.ZipFile(io.BytesIO(mine.content)).namelist()

    bob = login(url, "bob", PASSWORDS["bob"])
    for guess in [f"download/{export}", f"download/{run}", f"download/{export + 1}",
                  f"gradio_api/file={hosted['zip']}", f"gradio_api/file={hosted['zip'].relative_to(Path.cwd().anchor)}",
                  "gradio_api/file=../../artifacts/jobs", f"file={hosted['zip']}"]:
        answer = bob.get(url + guess, timeout=30)
        assert answer.status_code in (403, 404), (guess, answer.status_code)
        assert answer.content != mine.content

    as_bob = Client(url, auth=("bob", PASSWORDS["bob"]), verbose=False)
    table, detail, *_ = as_bob.predict(run, api_name="/history")
    assert table["data"] in ([], [[]]) or all("alice" not in str(row) for row in table["data"])
    assert f"There is no job {run}" in detail
    for call in (lambda: as_bob.predict(run, 0, 0, 0, api_name="/compare")[0],
                 lambda: as_bob.predict(run, api_name="/export_models")[2]):
        try:
            said = call()
        except AppError:  # Gradio refuses a run id the user's own dropdown never offered
            said = "refused"
        assert said == "refused" or f"There is no job {run}" in said

    as_alice = Client(url, auth=("alice", PASSWORDS["alice"]), verbose=False)
    table, detail, *_ = as_alice.predict(run, api_name="/history")
    assert f"Job {run}" in detail and len(table["data"]) == 2
    root = login(url, "root", PASSWORDS["root"])  # the admin made from the environment sees everyone's
    assert root.get(url + f"download/{export}", timeout=60).content == mine.content


def test_oversized_uploads_and_a_zip_bomb_are_refused_and_nothing_is_stored(hosted, tmp_path):
    url, storage = hosted["url"], hosted["storage"]
    bob = login(url, "bob", PASSWORDS["bob"])
    cookie = "; ".join(f"{k}={v}" for k, v in bob.cookies.items())
    datasets_before = sorted(p.name for p in (storage.store.root / "datasets").iterdir())

    # 2 GB declared: refused from the headers, before the body is read
    conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1].strip("/")), timeout=30)
    conn.putrequest("POST", "/gradio_api/upload")
    conn.putheader("Content-Type", "multipart/form-data; boundary=x")
    conn.putheader("Content-Length", str(2 * 1024 ** 3))
    conn.putheader("Cookie", cookie)
    conn.endheaders()
    conn.send(b"--x\r\n" + b"a" * 65536)
    answer = conn.getresponse()
    assert answer.status == 413 and "accepts files up to 64 MB" in answer.read().decode()

    # a stream that never says its size is cut off once it passes the limit
    def chunks():
        yield b'--x\r\nContent-Disposition: form-data; name="files"; filename="big.csv"\r\n\r\n'
        for _ in range(2 * 1024):  # up to 2 GB, but the server stops reading long before
            yield b"text,label\n" * 95325

    streamed = bob.post(url + "gradio_api/upload", data=chunks(),
                        headers={"Content-Type": "multipart/form-data; boundary=x"}, timeout=120)
    assert streamed.status_code == 413 and "maximum allowed size" in streamed.text

    # a zip bomb: 1 GiB of zeros in a tiny zip, under a CSV name
    bomb = tmp_path / "tickets.csv"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("data.csv", "w", force_zip64=True) as member:
            for _ in range(1024):
                member.write(bytes(1024 * 1024))
    assert bomb.stat().st_size < 5 * 1024 * 1024
    from gradio_client import Client, handle_file

    as_bob = Client(url, auth=("bob", PASSWORDS["bob"]), verbose=False)
    report = as_bob.predict(handle_file(str(bomb)), "(detect)", *["(detect)"] * 4,
                            api_name="/check_dataset")[0]
    assert "ZIP archive" in report and "Traceback" not in report
    with storage.db.session() as s:
        assert records.list_datasets(s, Viewer(records.find_user(s, "bob").id)) == []
    assert sorted(p.name for p in (storage.store.root / "datasets").iterdir()) == datasets_before
