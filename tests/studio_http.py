"""Talking to a running studio over plain HTTP, the way a browser or an attacker would: sessions from a
chosen loopback address (so each test is its own client for the login limits), logins, and Gradio's queue
protocol spoken by hand (so a request can carry exactly the payload a test wants, including file objects
naming any path)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

import requests
from requests.adapters import HTTPAdapter


class _FromAddress(HTTPAdapter):
    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        return super().init_poolmanager(*args, **kwargs)


def client(address: str = "127.0.0.1") -> requests.Session:
    """A session whose connections come from `address` (any 127.x.y.z works on Linux loopback)."""
    session = requests.Session()
    session.mount("http://", _FromAddress(address))
    return session


def login(url: str, name: str, password: str, address: str = "127.0.0.1") -> requests.Session:
    session = client(address)
    answer = session.post(url + "login", data={"username": name, "password": password}, timeout=60)
    assert answer.status_code == 200 and answer.json() == {"success": True}, (name, answer.status_code, answer.text)
    return session


@dataclass
class Answer:
    status: int
    """The HTTP status of joining the queue (the guard refuses there)."""
    text: str = ""
    output: dict = field(default_factory=dict)
    success: bool = False

    @property
    def everything(self) -> str:
        return self.text + json.dumps(self.output)


def call(
    session: requests.Session, url: str, fn_index: int, data: list, session_hash: str | None = None, timeout: float = 120
) -> Answer:
    """One event through Gradio's queue (join, then read the event stream until it completes)."""
    page = session_hash or uuid.uuid4().hex[:11]
    joined = session.post(
        url + "gradio_api/queue/join",
        timeout=60,
        json={"data": data, "fn_index": fn_index, "session_hash": page, "event_data": None, "trigger_id": None},
    )
    if joined.status_code != 200:
        return Answer(joined.status_code, joined.text)
    event = joined.json()["event_id"]
    with session.get(url + "gradio_api/queue/data", params={"session_hash": page}, stream=True, timeout=timeout) as stream:
        if stream.status_code != 200:
            return Answer(stream.status_code, stream.text)
        for line in stream.iter_lines():
            if not line.startswith(b"data:"):
                continue
            message = json.loads(line[5:])
            if message.get("event_id") == event and message.get("msg") == "process_completed":
                return Answer(200, output=message.get("output") or {}, success=bool(message.get("success")))
    return Answer(599, "the event stream ended without a result")


def file_data(path: str, name: str = "data.csv") -> dict:
    """What a page sends for a file input: Gradio's FileData, naming a path on the server."""
    return {
        "path": path,
        "orig_name": name,
        "size": None,
        "mime_type": None,
        "is_stream": False,
        "meta": {"_type": "gradio.FileData"},
    }


def upload(session: requests.Session, url: str, name: str, content: bytes) -> requests.Response:
    return session.post(url + "gradio_api/upload", files={"files": (name, content)}, timeout=120)


def endpoints(session: requests.Session, url: str) -> list[dict]:
    """Every event handler the running app has, from its own config: id, api name and input components."""
    config = session.get(url + "config", timeout=60).json()
    components = {c["id"]: c for c in config["components"]}
    return [
        {"id": d["id"], "api_name": d.get("api_name"), "inputs": [components[i] for i in d["inputs"]]}
        for d in config["dependencies"]
    ]
