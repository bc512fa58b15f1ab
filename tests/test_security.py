"""The hosted studio attacked over HTTP, the way an outsider and a second logged-in user would try it.

One real server on PostgreSQL (the hosted database, as the Docker setup runs it; a studio on SQLite runs the same
queries, which the rest of the suite covers), started as the container starts it (`python -m studio ui` configured
by environment variables), with real users, each with a real finished run and export. Alice's
data carries canaries (a text marker, a label, a file name): no answer to anyone else may contain them.
The routes and event handlers attacked are enumerated from the app itself (its FastAPI routes, and the
running server's own config), so a new route or handler is attacked without a new test.
"""

from __future__ import annotations

import concurrent.futures
import gzip
import http.client
import io
import json
import os
import socket
import stat
import subprocess
import sys
import time
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import select
from studio_http import Answer, call, client, endpoints, file_data, login, upload

from storage import records
from storage.config import StorageConfig, open_storage
from storage.sessions import expire_session
from storage.tables import Job, LoginSession
from studio.accounts import add_user
from studio.jobs import service
from studio.jobs.runner import run_here

ROOT = Path(__file__).resolve().parent.parent
PASSWORDS = {
    "alice": "alice-secret-1",
    "bob": "bob-secret-22",
    "carol": "carol-secret-3",
    "dave": "dave-secret-44",
    "erin": "erin-secret-55",
    "mallory": "mallory-secret-6",
    "root": "admin-secret-333",
}
CANARIES = ("ALICE-CANARY-7731", "alicesecretlabel", "alice-tickets.csv", "alice")
QUOTA_MB = 20
FOREIGN = "http://evil.example.com"
FRIEND = "http://intranet.example.com"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def finished_run(storage, viewer, data: Path, teacher: Path) -> tuple[int, int, int]:
    """(dataset, distill run, export) made for real with a tiny teacher."""
    dataset = service.add_dataset(storage, viewer, data)
    run = service.submit(
        storage,
        viewer,
        "distill",
        {
            "dataset_id": dataset,
            "distill": {"teacher": str(teacher), "student_layers": 1, "epochs": 1, "teacher_epochs": 1, "max_length": 32},
        },
        enqueue=False,
    )
    assert run_here(storage, run) == "done"
    export = service.submit(storage, viewer, "export", {"variant": "student", "onnx": False}, parent_id=run, enqueue=False)
    assert run_here(storage, export) == "done"
    return dataset, run, export


@pytest.fixture(scope="module")
def server(postgres_server, tmp_path_factory, tiny_bert):
    home = tmp_path_factory.mktemp("hosted")
    db_url = postgres_server.new_database()
    storage = open_storage(StorageConfig(db_url, home / "artifacts"))
    users = {name: add_user(storage.db, name, PASSWORDS[name]) for name in PASSWORDS if name != "root"}
    tickets = (ROOT / "studio" / "samples" / "support_tickets.csv").read_text().splitlines()[:201]
    alice_data, bob_data = home / "alice-tickets.csv", home / "bob-tickets.csv"
    alice_data.write_text(
        "\n".join(
            [tickets[0]]
            + [line.replace(",billing", ",alicesecretlabel").replace('",', ' ALICE-CANARY-7731",', 1) for line in tickets[1:]]
        )
    )
    bob_data.write_text("\n".join(tickets) + "\n")
    made = {
        "alice": finished_run(storage, users["alice"], alice_data, tiny_bert),
        "bob": finished_run(storage, users["bob"], bob_data, tiny_bert),
    }
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SLM_STUDIO_")},
        "PYTHONPATH": str(ROOT),
        "SLM_STUDIO_HOME": str(home),
        "SLM_STUDIO_DB_URL": db_url,
        "SLM_STUDIO_AUTH": "users",
        "SLM_STUDIO_PORT": str(port),
        "SLM_STUDIO_MAX_UPLOAD_MB": "64",
        "SLM_STUDIO_USER_QUOTA_MB": str(QUOTA_MB),
        "SLM_STUDIO_ALLOWED_ORIGINS": FRIEND,
        "SLM_STUDIO_LOGIN_LIMIT_ACCOUNT_TOTAL": "12/hour",
        "SLM_STUDIO_ADMIN_USER": "root",
        "SLM_STUDIO_ADMIN_PASSWORD": PASSWORDS["root"],
    }
    log_path = home / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "studio", "ui", "--no-worker"],
            env=env,
            cwd=home,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while True:
        try:
            if requests.get(url + "healthz", timeout=5).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        assert process.poll() is None and time.time() < deadline, log_path.read_text()
        time.sleep(0.5)
    yield {
        "url": url,
        "storage": storage,
        "env": env,
        "home": home,
        "made": made,
        "users": users,
        "log": log_path,
        "uploads": home / "uploads",
    }
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError("the server did not stop within 30 s of SIGTERM") from None
    storage.db.dispose()


def cli(server, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "studio", *args], input=stdin, capture_output=True, text=True, timeout=120, env=server["env"]
    )


def no_canary(text: str) -> None:
    for canary in CANARIES:
        assert canary not in text, f"{canary!r} leaked: {text[:400]}"


def alice_paths(server) -> dict[str, Path]:
    """Files of alice's on the server that another user might try to name."""
    storage, (dataset, run, _) = server["storage"], server["made"]["alice"]
    with storage.db.session() as s:
        stored = storage.store.resolve(records.get_dataset(s, server["users"]["alice"], dataset).path)
        folder = storage.store.resolve(s.get(Job, run).folder)
    return {"dataset": stored / "train.jsonl", "vocab": next(folder.rglob("vocab.txt")), "db": server["home"] / "studio.db"}


def all_routes(server) -> list[tuple[str, str]]:
    """(method, path) of every route the studio's app has, Gradio's included, read off the app itself."""
    from starlette.routing import Mount

    from studio.hosting import HostSettings
    from studio.ui.server import create_server

    api, _ = create_server(server["storage"], HostSettings(auth="users"))
    found: list[tuple[str, str]] = []

    def walk(routes, prefix: str = "") -> None:
        for route in routes:
            if isinstance(route, Mount):
                walk(route.routes, prefix + route.path)
            elif hasattr(route, "path"):
                found.extend((m, prefix + route.path) for m in sorted(getattr(route, "methods", None) or {"GET"}))
            else:  # a router included under a prefix (Gradio's /gradio_api)
                walk(route.original_router.routes, prefix + (getattr(route.include_context, "prefix", "") or ""))

    walk(api.routes)
    return [(m, p.replace("{", "").replace("}", "").replace(":path", "")) for m, p in found if m != "HEAD"]


# --------------------------------------------------------------------------- no login


def test_nothing_answers_without_a_login(server):
    url, routes = server["url"], all_routes(server)
    assert len(routes) > 60  # Gradio's routes are there to attack, not only the studio's
    anonymous = client("127.0.0.31")
    for method, path in routes:
        answer = anonymous.request(
            method,
            url + path.lstrip("/"),
            timeout=30,
            allow_redirects=False,
            json={"data": [1], "fn_index": 0, "session_hash": "x"} if method == "POST" else None,
        )
        if path in ("/healthz", "/login", "/favicon.ico", "/robots.txt"):
            continue
        if path == "/api/v1/health":  # the served models' API says it is up, and nothing else, to anyone
            assert answer.status_code == 200 and answer.json() == {"status": "ok"}
            continue
        assert answer.status_code in (401, 404), (method, path, answer.status_code)
        assert "dependencies" not in answer.text and "api_name" not in answer.text
    page = anonymous.get(url, headers={"Accept": "text/html"}, timeout=30, allow_redirects=False)
    assert page.status_code == 303 and page.headers["location"] == "login"
    form = anonymous.get(url + "login", timeout=30)
    assert form.status_code == 200 and 'name="password"' in form.text
    assert "api_name" not in form.text and "<script" not in form.text  # no API schema, no script at all
    assert anonymous.get(url + "healthz", timeout=30).json()["auth"] == "users"


def test_logins_are_checked_against_hashed_passwords(server):
    url = server["url"]
    guesser = client("127.0.0.32")
    for name, password in [
        ("alice", "wrong-password"),
        ("nobody", "whatever-123"),
        ("local", "x"),
        ("alice", PASSWORDS["bob"]),
        ("alice", ""),
        ("", ""),
    ]:
        answer = guesser.post(url + "login", data={"username": name, "password": password}, timeout=30)
        assert answer.status_code == 400 and "success" not in answer.text, (name, answer.text)
        assert not answer.cookies
    as_browser = guesser.post(
        url + "login", data={"username": "alice", "password": "nope-nope-nope"}, headers={"Accept": "text/html"}, timeout=30
    )
    assert as_browser.status_code == 400 and "Incorrect user name or password" in as_browser.text
    with server["storage"].db.session() as s:
        stored = records.find_user(s, "alice").password_hash
        tokens = list(s.scalars(select(LoginSession.token_hash)))
    assert stored.startswith("$argon2id$") and PASSWORDS["alice"] not in stored
    alice = login(url, "alice", PASSWORDS["alice"], "127.0.0.32")
    token = alice.cookies["slm_studio_session"]
    assert token not in tokens and all(len(t) == 64 for t in tokens)  # only hashes of tokens are stored


# --------------------------------------------------------------------------- files and ids of other users


def test_a_file_is_usable_only_by_the_login_that_uploaded_it(server):
    url, uploads = server["url"], server["uploads"]
    alice = login(url, "alice", PASSWORDS["alice"], "127.0.0.33")
    bob = login(url, "bob", PASSWORDS["bob"], "127.0.0.33")
    hers = upload(alice, url, "alice-tickets.csv", b"text,label\nALICE-CANARY-7731 hello,a\n").json()[0]
    assert alice.get(url + f"gradio_api/file={hers}", timeout=30).status_code == 200
    file_inputs = [(e["id"], [i for i, c in enumerate(e["inputs"]) if c["type"] == "file"]) for e in endpoints(bob, url)]
    file_inputs = [(fn, slots) for fn, slots in file_inputs if slots]
    assert file_inputs  # the data step takes a file
    targets = {
        **{k: str(v) for k, v in alice_paths(server).items()},
        "upload": hers,
        "passwd": "/etc/passwd",
        "relative": "../../etc/passwd",
        "missing": str(uploads / "no-such-file.csv"),
        "relative-db": "studio.db",
        "dotted": f"{uploads}/../uploads/{Path(hers).relative_to(uploads)}",
        # a URL whose '..' would collapse onto her own upload: Gradio would fetch it (server-side request)
        "url": f"http://1.1.1.1/x/../../../../../../../../../..{hers}",
        "url-query": f"https://1.1.1.1/cdn-cgi/trace?x=/../../../../../../../../..{hers}",
    }
    before = {p for p in uploads.rglob("*") if p.is_file()}
    inputs = {e["id"]: len(e["inputs"]) for e in endpoints(bob, url)}
    for fn, slots in file_inputs:
        answers = {}
        for what, path in targets.items():
            data = [file_data(path) if i in slots else "(detect)" for i in range(inputs[fn])]
            answers[what] = call(bob, url, fn, data)
            assert answers[what].status == 403, (fn, what, answers[what])
            no_canary(answers[what].everything)
            assert path not in answers[what].text and "/" not in answers[what].text  # no path echoed back
        assert len({a.text for a in answers.values()}) == 1  # existing or not: the same answer (no oracle)
        for what, path in targets.items():
            assert bob.get(url + f"gradio_api/file={path}", timeout=30).status_code == 404, what
    assert {p for p in uploads.rglob("*") if p.is_file()} == before  # nothing was copied into the cache
    no_canary("".join(p.read_text(errors="replace") for p in before if str(p) != hers and "alice" not in str(p)))
    # her own upload works for her, through the page's own handler
    checked = call(alice, url, file_inputs[0][0], [file_data(hers), None, None, *["(detect)"] * 5])
    assert checked.status == 200 and "cannot be used yet" in checked.everything  # checked (one row is too few)
    assert not [p for p in uploads.rglob("*") if p.is_file() and p.stat().st_size == 0]  # no empty temp files left


def test_every_handler_refuses_another_users_ids(server):
    url, storage = server["url"], server["storage"]
    dataset, run, export = server["made"]["alice"]
    bob = login(url, "bob", PASSWORDS["bob"], "127.0.0.34")
    with storage.db.session() as s:
        before = sorted((j.id, j.status, j.folder) for j in s.scalars(select(Job)))
    student = str(storage.store.resolve(f"jobs/{run}") / "student")
    handlers = endpoints(bob, url)
    assert len(handlers) >= 30
    tries, made = [], set()
    for guess in (run, export, dataset, 2**40, -3, student, "../../etc/passwd"):
        for handler in handlers:
            data = [payload(component, guess) for component in handler["inputs"]]
            call_once = (handler["id"], json.dumps(data, sort_keys=True, default=str))
            if not any(d == "skip" for d in data) and call_once not in made:  # a handler no guess reaches: called once
                made.add(call_once)
                tries.append((handler, guess, data))
    with concurrent.futures.ThreadPoolExecutor(4) as pool:  # four at a time, as a page's events come; each is judged alone
        answers = list(pool.map(lambda t: call(bob, url, t[0]["id"], t[2]), tries))
    for (handler, guess, _), answer in zip(tries, answers):
        assert answer.status == 200, (handler, guess, answer.text)  # refused inside, not a server error
        no_canary(answer.everything)
        assert "Traceback" not in answer.everything
    ids = {job_id for job_id, _, _ in before}
    with storage.db.session() as s:  # nothing of alice's changed, deleted or was started on her run
        assert sorted((j.id, j.status, j.folder) for j in s.scalars(select(Job)) if j.id in ids) == before
        assert all(j.owner_id == server["users"]["bob"].user_id for j in s.scalars(select(Job)) if j.id not in ids)
    assert storage.store.resolve(f"jobs/{run}").is_dir() and storage.store.resolve(f"jobs/{export}").is_dir()


def payload(component: dict, guess):
    """What to put in one input of a handler when trying another user's id or path."""
    kind, value = component["type"], component.get("props", {}).get("value")
    if kind == "file":
        return "skip"  # the file inputs have their own test
    if kind == "state":
        return None
    if kind in ("number", "dropdown"):
        return guess
    if kind == "textbox":
        return str(guess)
    if kind == "checkboxgroup":
        return []
    return value


def test_page_sessions_cannot_be_borrowed(server):
    url = server["url"]
    alice = login(url, "alice", PASSWORDS["alice"], "127.0.0.35")
    bob = login(url, "bob", PASSWORDS["bob"], "127.0.0.35")
    history = next(e["id"] for e in endpoints(alice, url) if e["api_name"] == "history")
    mine = call(alice, url, history, [server["made"]["alice"][1]], session_hash="alicepage01")
    assert mine.status == 200 and "alice" in mine.everything
    assert call(bob, url, history, [server["made"]["alice"][1]], session_hash="alicepage01").status == 403
    assert bob.get(url + "gradio_api/queue/data", params={"session_hash": "alicepage01"}, timeout=30).status_code == 403
    assert bob.get(url + "gradio_api/heartbeat/alicepage01", timeout=30).status_code == 403
    assert (
        bob.post(
            url + "gradio_api/cancel", json={"session_hash": "alicepage01", "fn_index": history, "event_id": "x"}, timeout=30
        ).status_code
        == 403
    )
    hers = alice.post(
        url + "gradio_api/queue/join", json={"data": [1], "fn_index": history, "session_hash": "alicepage01"}, timeout=30
    ).json()["event_id"]
    assert (
        bob.post(
            url + "gradio_api/cancel", json={"session_hash": "bobpage0001", "fn_index": history, "event_id": hers}, timeout=30
        ).status_code
        == 403
    )
    for i in range(600):  # bob opens more pages than are remembered per user: only his own oldest are forgotten
        with bob.get(url + f"gradio_api/heartbeat/bobflood{i:04d}", timeout=30, stream=True) as beat:
            assert beat.status_code == 200
    assert bob.get(url + "gradio_api/heartbeat/alicepage01", timeout=30).status_code == 403


def test_downloads_only_for_the_owner(server):
    url, (_, run, export) = server["url"], server["made"]["alice"]
    alice = login(url, "alice", PASSWORDS["alice"], "127.0.0.36")
    mine = alice.get(url + f"download/{export}", timeout=60)
    assert mine.status_code == 200 and zipfile.ZipFile(io.BytesIO(mine.content)).namelist()
    assert "no-store" in mine.headers["cache-control"]
    bob = login(url, "bob", PASSWORDS["bob"], "127.0.0.36")
    for guess in [export, run, export + 100, "99999999999999999999999", "-1", "0", "1e3", "..%2F..%2Fetc%2Fpasswd"]:
        answer = bob.get(url + f"download/{guess}", timeout=30)
        assert answer.status_code == 404, (guess, answer.status_code)
        assert answer.content != mine.content
    root = login(url, "root", PASSWORDS["root"], "127.0.0.36")  # the admin made from the environment sees all
    assert root.get(url + f"download/{export}", timeout=60).content == mine.content


def test_other_origins_cannot_use_a_login(server):
    url = server["url"]
    alice = login(url, "alice", PASSWORDS["alice"], "127.0.0.37")
    history = next(e["id"] for e in endpoints(alice, url) if e["api_name"] == "history")
    read = alice.get(url + "config", headers={"Origin": FOREIGN}, timeout=30)
    assert "access-control-allow-origin" not in read.headers  # the browser hides the answer from that page
    preflight = alice.options(
        url + "gradio_api/queue/join",
        timeout=30,
        headers={"Origin": FOREIGN, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    join = {"data": [1], "fn_index": history, "session_hash": "fromevil01"}
    sent = alice.post(url + "gradio_api/queue/join", json=join, headers={"Origin": FOREIGN}, timeout=30)
    assert sent.status_code == 403  # the request itself is refused, not only its answer hidden
    for sibling in ("http://studio.example.com.evil.com", "null", f"{FOREIGN}:{url.rsplit(':', 1)[1].strip('/')}"):
        assert alice.post(url + "logout", headers={"Origin": sibling}, timeout=30).status_code == 403
    assert alice.get(url + "gradio_api/token", timeout=30).status_code == 404  # the token is never handed to script
    own = url.rstrip("/")
    for odd in ({"Origin": own + "/evil"}, {"Sec-Fetch-Site": "cross-site"}):
        assert alice.post(url + "gradio_api/queue/join", json=join, headers=odd, timeout=30).status_code == 403
    twice = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1].strip("/")), timeout=30)
    twice.putrequest("POST", "/logout")
    for name, value in (
        ("Origin", own),
        ("Origin", FOREIGN),
        ("Content-Length", "0"),
        ("Cookie", f"slm_studio_session={alice.cookies['slm_studio_session']}"),
    ):
        twice.putheader(name, value)
    twice.endheaders()
    assert twice.getresponse().status == 403  # two Origin headers: refused, whichever comes first
    forged = alice.get(url + "config", headers={"X-Forwarded-Host": "evil.example.com"}, timeout=30).json()
    assert "evil.example.com" not in json.dumps(forged)  # no proxy is trusted: the page's links stay its own
    noisy = requests.get(
        url + "config",
        timeout=30,
        headers={"Cookie": f'prefs={{"theme":"dark"}}; slm_studio_session={alice.cookies["slm_studio_session"]}'},
    )
    assert noisy.status_code == 200  # another app's malformed cookie does not log her out
    assert (
        alice.post(
            url + "gradio_api/queue/join", json={**join, "session_hash": "own0001"}, headers={"Origin": own}, timeout=30
        ).status_code
        == 200
    )
    friend = alice.get(url + "config", headers={"Origin": FRIEND}, timeout=30)
    assert friend.headers["access-control-allow-origin"] == FRIEND  # SLM_STUDIO_ALLOWED_ORIGINS
    assert alice.get(url + "config", timeout=30).status_code == 200  # nothing above logged her out


# --------------------------------------------------------------------------- logins and sessions


def test_guessing_passwords_is_throttled_and_cannot_stall_the_server(server):
    url = server["url"]
    attacker = client("127.0.0.41")
    said = [attacker.post(url + "login", data={"username": "erin", "password": f"guess-{i:04d}"}, timeout=60) for i in range(30)]
    statuses = [a.status_code for a in said]
    assert statuses[:5] == [400] * 5 and set(statuses[5:]) == {429}  # SLM_STUDIO_LOGIN_LIMIT_ACCOUNT: 5/minute
    assert "Too many login attempts for this account from your address" in said[-1].text
    assert int(said[-1].headers["retry-after"]) > 0
    right = attacker.post(url + "login", data={"username": "ERIN ", "password": PASSWORDS["erin"]}, timeout=60)
    assert right.status_code == 429 and not right.cookies  # not even the right password (nor a variant of the name)
    login(url, "erin", PASSWORDS["erin"], "127.0.0.42")  # erin herself, elsewhere, is not locked out by a guesser
    login(url, "alice", PASSWORDS["alice"], "127.0.0.41")  # nor are the guesser's other accounts

    # guessing from many addresses: the account's total (SLM_STUDIO_LOGIN_LIMIT_ACCOUNT_TOTAL, here 12/hour) stops it
    spread = [
        client(f"127.0.3.{i // 4 + 1}")
        .post(url + "login", data={"username": "erin", "password": f"x-{i:04d}"}, timeout=60)
        .status_code
        for i in range(16)
    ]
    assert spread.count(400) == 12 and spread[-1] == 429  # (her own login above cleared the count)
    locked = client("127.0.0.48").post(url + "login", data={"username": "erin", "password": PASSWORDS["erin"]}, timeout=60)
    assert locked.status_code == 429 and "Too many login attempts for this account." in locked.text

    sprayer = client("127.0.0.43")  # one address trying many accounts
    sprayed = [
        sprayer.post(url + "login", data={"username": f"user{i}", "password": "password-123"}, timeout=60) for i in range(25)
    ]
    assert [a.status_code for a in sprayed][:20] == [400] * 20 and sprayed[-1].status_code == 429
    assert "from your address" in sprayed[-1].text  # SLM_STUDIO_LOGIN_LIMIT_ADDRESS: 20/minute

    def bad_login(i: int) -> int:
        return (
            client(f"127.0.1.{i + 1}")
            .post(url + "login", data={"username": f"flood{i}", "password": "x" * 20}, timeout=60)
            .status_code
        )

    health = []
    with concurrent.futures.ThreadPoolExecutor(40) as pool:
        burst = [pool.submit(bad_login, i) for i in range(40)]
        while not all(f.done() for f in burst):
            started = time.perf_counter()
            assert requests.get(url + "healthz", timeout=30).status_code == 200
            health.append(time.perf_counter() - started)
        statuses = [f.result() for f in burst]
    assert set(statuses) <= {400, 503} and health
    assert max(health) < 1.0, f"health check took up to {max(health):.2f} s during 40 parallel logins"


def login_sessions(server, name: str) -> list[LoginSession]:
    with server["storage"].db.session() as s:
        user = records.find_user(s, name)
        return list(s.scalars(select(LoginSession).where(LoginSession.user_id == user.id).order_by(LoginSession.id)))


def refused_everywhere(session: requests.Session, url: str, uploaded: str, export: int) -> None:
    """A session that has ended: no page, no event, no upload, no file, no download."""
    assert session.get(url, timeout=30, allow_redirects=False).status_code == 401
    assert session.get(url + "config", timeout=30).status_code == 401
    assert upload(session, url, "more.csv", b"text,label\n").status_code == 401
    assert session.get(url + f"gradio_api/file={uploaded}", timeout=30).status_code == 401
    assert call(session, url, 0, ["x", None, "", ""]).status == 401
    assert session.get(url + f"download/{export}", timeout=30).status_code == 401


def test_sessions_end_on_password_change_disable_logout_and_time(server):
    url, export = server["url"], server["made"]["alice"][2]
    address = "127.0.0.44"
    carol = login(url, "carol", PASSWORDS["carol"], address)
    uploaded = upload(carol, url, "c.csv", b"text,label\nhello,a\n").json()[0]
    assert carol.get(url + f"gradio_api/file={uploaded}", timeout=30).status_code == 200
    changed = cli(server, "users", "passwd", "carol", "--password-stdin", stdin="carol-new-secret-9\n")
    assert changed.returncode == 0 and "1 open session(s) ended" in changed.stdout, changed.stderr
    refused_everywhere(carol, url, uploaded, export)
    carol = login(url, "carol", "carol-new-secret-9", address)

    # logout is a POST from the studio's own page; a GET (a link anywhere) changes nothing
    assert carol.get(url + "logout", timeout=30).status_code == 200
    assert carol.get(url + "config", timeout=30).status_code == 200
    second = login(url, "carol", "carol-new-secret-9", address)  # another device
    assert carol.post(url + "logout", headers={"Origin": url.rstrip("/")}, timeout=30).status_code == 200
    for ended in (carol, second):
        assert ended.get(url + "config", timeout=30).status_code == 401
    assert login_sessions(server, "carol") == []

    dave = login(url, "dave", PASSWORDS["dave"], address)
    uploaded = upload(dave, url, "d.csv", b"text,label\nhello,a\n").json()[0]
    disabled = cli(server, "users", "disable", "dave")
    assert disabled.returncode == 0 and "ended at once" in disabled.stdout
    refused_everywhere(dave, url, uploaded, export)
    assert (
        client(address).post(url + "login", data={"username": "dave", "password": PASSWORDS["dave"]}, timeout=30).status_code
        == 400
    )

    # server-side expiry: the lifetime, and the idle limit
    carol = login(url, "carol", "carol-new-secret-9", address)
    expire_session(server["storage"].db, login_sessions(server, "carol")[-1].id, login_sessions(server, "carol")[-1].created_at)
    assert carol.get(url + "config", timeout=30).status_code == 401
    carol = login(url, "carol", "carol-new-secret-9", address)
    with server["storage"].db.session() as s:
        row = s.get(LoginSession, login_sessions(server, "carol")[-1].id)
        row.last_seen_at = row.last_seen_at - timedelta(minutes=121)  # SLM_STUDIO_SESSION_IDLE_MINUTES: 120
    assert carol.get(url + "config", timeout=30).status_code == 401


# --------------------------------------------------------------------------- size: bombs, bodies, quota


def check_upload(session, url: str, name: str, content: bytes) -> Answer:
    """Upload a file and press the data step's "Check" (its handler found by its API name)."""
    path = upload(session, url, name, content).json()[0]
    check = next(e for e in endpoints(session, url) if e["api_name"] == "check_dataset")
    return call(session, url, check["id"], [file_data(path, name), None, None, *["(detect)"] * 5])


def test_bombs_and_oversized_bodies_are_refused_and_nothing_is_stored(server, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    url, storage = server["url"], server["storage"]
    mallory = login(url, "mallory", PASSWORDS["mallory"], "127.0.0.45")
    stored_before = sorted(p.name for p in (storage.store.root / "datasets").iterdir())

    # a Parquet bomb: 100,000 rows of 1 KB text in 14 KB
    table = pa.table({"text": ["Parcel lost again, refund please. " * 30] * 100_000, "label": ["a", "b"] * 50_000})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    assert len(sink.getvalue()) < 64 * 1024
    said = check_upload(mallory, url, "bomb.parquet", sink.getvalue()).everything
    assert "unpacks to more than 16.0 MB, over 50 times its own size" in said and "Traceback" not in said

    # a zip bomb and a gzip'd JSON Lines file under text names
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("data.csv", "w", force_zip64=True) as member:
            for _ in range(1024):
                member.write(bytes(1024 * 1024))
    assert "ZIP archive" in check_upload(mallory, url, "tickets.csv", bomb.getvalue()).everything
    gzipped = gzip.compress(b'{"text": "hello there", "label": "a"}\n' * 1_000_000)
    assert "gzip archive" in check_upload(mallory, url, "tickets.jsonl", gzipped).everything

    # 2 GB declared: refused from the headers, before the body is read
    port = int(url.rsplit(":", 1)[1].strip("/"))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.putrequest("POST", "/gradio_api/upload")
    conn.putheader("Content-Type", "multipart/form-data; boundary=x")
    conn.putheader("Content-Length", str(2 * 1024**3))
    conn.putheader("Cookie", f"slm_studio_session={mallory.cookies['slm_studio_session']}")
    conn.endheaders()
    conn.send(b"--x\r\n" + b"a" * 65536)
    answer = conn.getresponse()
    assert answer.status == 413 and "accepts files up to 64 MB" in answer.read().decode()

    # a stream that never says its size is cut off once it passes the limit
    def chunks(part: bytes, times: int):
        yield b'--x\r\nContent-Disposition: form-data; name="files"; filename="big.csv"\r\n\r\n'
        for _ in range(times):
            yield part

    streamed = mallory.post(
        url + "gradio_api/upload",
        data=chunks(b"text,label\n" * 95325, 2048),
        headers={"Content-Type": "multipart/form-data; boundary=x"},
        timeout=120,
    )
    assert streamed.status_code == 413

    # 60 MB of JSON, chunked, to an API call: refused at the request limit, long before the end
    started = time.perf_counter()
    big = mallory.post(
        url + "gradio_api/queue/join",
        data=chunks(b" " * 1024 * 1024, 60),
        headers={"Content-Type": "application/json"},
        timeout=120,
    )
    assert big.status_code == 413 and "1,024 KB" in big.text and time.perf_counter() - started < 30
    assert mallory.post(url + "login", data={"username": "x" * 2_000_000}, timeout=60).status_code == 413

    with storage.db.session() as s:
        assert records.list_datasets(s, server["users"]["mallory"]) == []
    assert sorted(p.name for p in (storage.store.root / "datasets").iterdir()) == stored_before


def test_a_users_storage_quota(server):
    url, storage = server["url"], server["storage"]
    mallory = login(url, "mallory", PASSWORDS["mallory"], "127.0.0.46")
    rows = "".join(
        f"parcel {i} arrived damaged and the box was open with item {i * 7} gone.,damage\n"
        f"where is my order number {i}? it has been two weeks now.,delivery\n"
        for i in range(64_000)
    )
    first = check_upload(mallory, url, "first.csv", ("text,label\n" + rows).encode()).everything
    assert "rows are ready" in first
    with storage.db.session() as s:
        used = records.stored_bytes(s, storage.store, server["users"]["mallory"].user_id)
    assert QUOTA_MB * 1024**2 / 2 < used < QUOTA_MB * 1024**2
    second = check_upload(mallory, url, "second.csv", ("text,label\n" + rows.replace("parcel", "box")).encode())
    assert "does not fit in what is left of your storage" in second.everything
    assert "SLM_STUDIO_USER_QUOTA_MB" in second.everything
    with storage.db.session() as s:
        assert len(records.list_datasets(s, server["users"]["mallory"])) == 1
        assert records.stored_bytes(s, storage.store, server["users"]["mallory"].user_id) == used
    # the raw uploads wait in Gradio's cache for a day: they are capped at the quota too
    third = upload(mallory, url, "third.csv", ("text,label\n" + rows.replace("parcel", "crate")).encode())
    assert third.status_code == 413 and "already take as much as your storage quota allows" in third.text
    fourth = mallory.post(
        url + "gradio_api/upload",
        timeout=120,
        headers={"Content-Type": "multipart/form-data; boundary=x"},
        data=iter([b'--x\r\nContent-Disposition: form-data; name="files"; filename="f.csv"\r\n\r\n', b"a" * (5 * 1024 * 1024)]),
    )
    assert fourth.status_code == 413  # a stream without a declared size is stopped at what is left
    assert not [p for p in server["uploads"].iterdir() if p.is_file()]  # no partial upload left behind


# --------------------------------------------------------------------------- what every answer and file carries


def test_security_headers_and_private_files(server):
    url = server["url"]
    alice = login(url, "alice", PASSWORDS["alice"], "127.0.0.47")
    for answer in (alice.get(url, timeout=30), requests.get(url + "config", timeout=30), requests.get(url + "login", timeout=30)):
        headers = answer.headers
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "connect-src 'self'" in headers["content-security-policy"]
        assert headers["referrer-policy"] and headers["cross-origin-opener-policy"] == "same-origin"
    cookie = next(c for c in alice.cookies if c.name == "slm_studio_session")
    assert cookie.has_nonstandard_attr("HttpOnly") and cookie.path == "/"
    home, storage = server["home"], server["storage"]
    with storage.db.session() as s:  # what the server wrote (alice's and bob's runs were made by this test process)
        theirs = [storage.store.resolve(d.path) for d in records.list_datasets(s, server["users"]["mallory"])]
    private = [storage.store.root, *server["uploads"].rglob("*"), *theirs, *(f for d in theirs for f in d.rglob("*"))]
    if (home / "studio.db").exists():
        private.append(home / "studio.db")
    assert len(private) > 5
    opened = [p for p in private if stat.S_IMODE(p.stat().st_mode) & 0o077]
    assert not opened, f"readable by other accounts of the machine: {opened[:5]}"


def test_the_admin_sees_refusals_in_the_log(server):
    assert (
        client("127.0.0.49").get(server["url"] + "nothing%0aFAKE%20studio.login%20INFO%20logout", timeout=30).status_code == 404
    )
    logged = server["log"].read_text()
    assert "refused POST '/gradio_api/queue/join'" in logged and "login throttled" in logged
    assert not [line for line in logged.splitlines() if line.startswith("FAKE")]  # a path cannot forge a line
    assert "Could not fetch" not in logged  # no URL named in a request was ever fetched
    assert PASSWORDS["erin"] not in logged and "guess-0001" not in logged  # no password ever written
