"""The served models' HTTP API, in the studio's own server or alone (`python -m studio serve`).

    POST /api/v1/models/<name>/classify   {"text": "..."} or {"texts": [...]} -> label, probabilities, and whether
                                          the teacher answered (the small-model-first hybrid)
    POST /v1/chat/completions             OpenAI-compatible (streaming too), for text generators
    POST /v1/completions                  OpenAI-compatible, for text generators
    GET  /v1/models                       the caller's served models, OpenAI-style
    GET  /api/v1/health                   200 while the server answers (no key needed)
    GET  /metrics                         Prometheus text: requests, latency histogram, share the student answered

Who calls: a key in `Authorization: Bearer slm-...` (what OpenAI clients send), made in the Deploy step. A key
reaches only its owner's served models: another user's model of the same name is not found (404), as one that does
not exist; a revoked key is refused (401). A local studio (no logins) also answers its own machine without a key.
Errors come as OpenAI's {"error": {"message", "type", "code"}} with the HTTP status saying which kind.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from ipaddress import ip_address
from typing import Any, TypeVar

import anyio
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from storage import jobs as job_rows
from storage import records
from storage import serving as rows
from storage.config import Storage
from storage.errors import NotFoundError
from storage.jobs import Viewer
from studio.errors import ConfigError
from studio.serve.engine import MAX_NEW_TOKENS, Asked, Overloaded, ServedModel, check_texts
from studio.words import Task

log = logging.getLogger("studio.serve")
T = TypeVar("T")

MAX_TEXTS = 64
"""Texts one classify request may carry (a bigger batch: several requests)."""
MAX_BODY_KB = 256


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code

    def response(self) -> JSONResponse:
        headers = {"Retry-After": "1"} if self.status == 429 else None
        body = {"error": {"message": self.message, "type": self.kind, "param": None, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=headers)


class ServingMetrics:
    """Prometheus counters of one server (their own registry: two servers in one process count apart)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("slm_requests", "Requests to served models", ["model", "route", "status"], registry=self.registry)
        self.latency = Histogram(
            "slm_request_seconds",
            "Time to answer a request",
            ["model", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.answers = Counter(
            "slm_answers",
            "Answers, by who gave them (the served model or the teacher)",
            ["model", "answered_by"],
            registry=self.registry,
        )
        self.waiting = Gauge("slm_waiting", "Requests waiting for a model", ["model"], registry=self.registry)


class Serving:
    """The models this server serves, loaded when first asked for (or warmed at start) and kept."""

    def __init__(self, storage: Storage, hosted: bool, batching: bool = True) -> None:
        self.storage, self.hosted, self.batching = storage, hosted, batching
        self.metrics = ServingMetrics()
        self._models: dict[int, ServedModel] = {}
        self.local: Viewer | None = None
        """A local studio's one user (looked up once)."""
        self.labels: dict[int, str] = {}
        """Each deployment's name in the metrics (hosted: owner/name)."""
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()
        self._reads_here = storage.db.engine.dialect.name == "sqlite"

    async def read(self, read: Callable[..., T], *args: Any) -> T:
        """What every API call reads (its key's owner, its served model): one indexed row. SQLite's, from a local
        file in WAL mode where a reader waits for no writer (about 0.1 ms), is read right here on the event loop:
        handing it to a thread cost more than the read: 403-435 req/s through a thread, 486-555 here (bench/serve.py's
        server and load, int8 student, 32 clients). Another database's read goes over the network, so to a thread."""
        if self._reads_here:
            return read(*args)
        return await anyio.to_thread.run_sync(read, *args)

    def loaded(self, row: rows.DeploymentRow) -> ServedModel | None:
        return self._models.get(row.id)

    def model(self, row: rows.DeploymentRow) -> ServedModel:
        with self._guard:
            lock = self._locks.setdefault(row.id, threading.Lock())
        with lock:  # one load per deployment, however many first requests come at once
            if row.id not in self._models:
                with self.storage.db.session() as s:
                    run = job_rows.get(s, Viewer(row.user_id), row.job_id)
                    folder = self.storage.store.local(run.folder)
                started = time.perf_counter()
                self._models[row.id] = ServedModel(folder, row.model, row.threshold, row.hybrid, self.batching)
                log.info(
                    "serving %s (job %s, %s) loaded in %.1f s", row.name, row.job_id, row.model, time.perf_counter() - started
                )
            return self._models[row.id]

    def warm(self) -> threading.Thread:
        """Load every deployment not stopped (a restart brings them back), in the background."""

        def load_all() -> None:
            for row in rows.served(self.storage.db):
                try:
                    self.model(row)
                except Exception as err:  # noqa: BLE001 - one model that cannot load must not keep the others down
                    log.error("served model %s (job %s) could not be loaded: %s", row.name, row.job_id, err)

        thread = threading.Thread(target=load_all, name="serving-warm", daemon=True)
        thread.start()
        return thread


def _loopback(request: Request) -> bool:
    try:
        return request.client is not None and ip_address(request.client.host).is_loopback
    except ValueError:
        return False


async def caller(serving: Serving, request: Request) -> Viewer:
    header = request.headers.get("authorization", "")
    key = header[7:].strip() if header[:7].lower() == "bearer " else request.headers.get("x-api-key", "").strip()
    if key:
        owner = await serving.read(rows.key_owner, serving.storage.db, key)
        if owner is None:
            raise ApiError(
                401,
                "This API key is not valid (revoked, or mistyped): make a new one in the Deploy step.",
                "authentication_error",
                "invalid_api_key",
            )
        if owner.touch_due:  # a write (it may wait for a worker's): never on the event loop
            await anyio.to_thread.run_sync(rows.touch_key, serving.storage.db, owner.key_id)
        return owner.viewer
    if not serving.hosted and _loopback(request):
        if serving.local is None:
            serving.local = await anyio.to_thread.run_sync(records.local_user, serving.storage.db)
        return serving.local
    raise ApiError(
        401,
        "Send an API key: 'Authorization: Bearer slm-...' (make one in the Deploy step).",
        "authentication_error",
        "missing_api_key",
    )


async def _body(request: Request) -> dict:
    raw = await request.body()
    if len(raw) > MAX_BODY_KB * 1024:
        raise ApiError(413, f"The request is {len(raw) // 1024} KB; at most {MAX_BODY_KB} KB: send fewer or shorter texts.")
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise ApiError(400, "The body is not JSON: send a JSON object.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object.")
    return body


async def _served(serving: Serving, viewer: Viewer, name: Any, task: str | None = None) -> tuple[rows.DeploymentRow, ServedModel]:
    if not isinstance(name, str) or not name:
        raise ApiError(400, 'Say which model: "model": "<the name you served it under>".')
    row = await serving.read(rows.find_served, serving.storage.db, viewer, name[:64])
    if row is None:
        raise ApiError(
            404,
            f"You serve no model named '{name[:64]}': GET /v1/models lists yours.",
            "invalid_request_error",
            "model_not_found",
        )
    if task is not None and row.task != task:
        use = "/api/v1/models/<name>/classify" if row.task == Task.CLASSIFICATION else "/v1/chat/completions"
        raise ApiError(
            400, f"'{row.name}' is a {'classifier' if row.task == Task.CLASSIFICATION else 'text generator'}: call {use}."
        )
    model = serving.loaded(row)  # loaded already: no trip through a worker thread
    try:
        model = model or await anyio.to_thread.run_sync(serving.model, row)
    except (ConfigError, NotFoundError, OSError) as err:
        raise ApiError(
            503, f"'{row.name}' cannot be loaded: {err}. Serve another model of the run, or make it again.", "server_error"
        ) from err
    return row, model


def _number(body: dict, key: str, default: float, low: float, high: float) -> float:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ApiError(400, f"'{key}' must be a number from {low} to {high}.")
    return float(value)


def add_serving_routes(app: FastAPI, serving: Serving) -> None:
    api = APIRouter()
    m = serving.metrics

    def answered(row: rows.DeploymentRow, route: str, started: float, status: int, teacher: list[bool]) -> None:
        label = serving.labels.setdefault(row.id, f"{row.owner}/{row.name}" if serving.hosted else row.name)
        m.requests.labels(label, route, str(status)).inc()
        m.latency.labels(label, route).observe(time.perf_counter() - started)
        for by_teacher in teacher:
            m.answers.labels(label, "teacher" if by_teacher else "model").inc()

    @api.post("/api/v1/models/{name}/classify")
    async def classify(name: str, request: Request) -> Response:
        started = time.perf_counter()
        viewer = await caller(serving, request)
        body = await _body(request)
        row, model = await _served(serving, viewer, name, Task.CLASSIFICATION)
        single = "texts" not in body
        try:
            texts = check_texts(body.get("text") if single else body.get("texts"))
        except ConfigError as err:
            raise ApiError(400, err.problems[0]) from None
        if len(texts) > MAX_TEXTS:
            raise ApiError(413, f"{len(texts)} texts in one request; at most {MAX_TEXTS}: split them over several requests.")
        labels = await _answer(model, model.classify(texts))
        answered(row, "classify", started, 200, [label.teacher_answered for label in labels])
        results = [asdict(label) for label in labels]
        extra = {"model": row.name, "threshold": model.threshold, "hybrid": model.hybrid}
        return JSONResponse({**results[0], **extra} if single else {"results": results, **extra})

    @api.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await _complete(request, chat=True)

    @api.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await _complete(request, chat=False)

    async def _complete(request: Request, chat: bool) -> Response:
        started = time.perf_counter()
        viewer = await caller(serving, request)
        body = await _body(request)
        row, model = await _served(serving, viewer, body.get("model"), Task.CAUSAL_LM)
        text = model.prompt_of(messages=_messages(body)) if chat else model.prompt_of(prompt=_prompt(body))
        asked = _asked(body, text)
        ident = ("chatcmpl-" if chat else "cmpl-") + secrets.token_hex(12)
        created = int(time.time())
        if body.get("stream"):
            return _stream(row, model, asked, ident, created, chat, started)
        written = (await _answer(model, model.write([asked])))[0]
        answered(row, "chat" if chat else "completions", started, 200, [written.teacher_answered])
        choice = (
            {"index": 0, "message": {"role": "assistant", "content": written.text}, "finish_reason": written.finish_reason}
            if chat
            else {"index": 0, "text": written.text, "finish_reason": written.finish_reason, "logprobs": None}
        )
        return JSONResponse(
            {
                "id": ident,
                "object": "chat.completion" if chat else "text_completion",
                "created": created,
                "model": row.name,
                "choices": [choice],
                "usage": {
                    "prompt_tokens": written.prompt_tokens,
                    "completion_tokens": written.completion_tokens,
                    "total_tokens": written.prompt_tokens + written.completion_tokens,
                },
                "slm_studio": {"teacher_answered": written.teacher_answered, "confidence": written.confidence},
            }
        )

    def _stream(row, model: ServedModel, asked: Asked, ident: str, created: int, chat: bool, started: float):
        try:
            model.batcher.hold(1)  # a stream holds a place in the model's queue while it writes
        except Overloaded:
            raise ApiError(
                429, "The model is busy: too many requests are waiting. Try again in a moment.", "rate_limit_error"
            ) from None

        def chunk(text: str | None, finish: str | None, role: bool = False) -> str:
            if chat:
                delta = {"role": "assistant", "content": ""} if role else ({"content": text} if text else {})
                choice = {"index": 0, "delta": delta, "finish_reason": finish}
            else:
                choice = {"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}
            kind = "chat.completion.chunk" if chat else "text_completion"
            return (
                "data: "
                + json.dumps({"id": ident, "object": kind, "created": created, "model": row.name, "choices": [choice]})
                + "\n\n"
            )

        def pieces():
            teacher = False
            try:
                if chat:
                    yield chunk(None, None, role=True)
                if model.hybrid:  # decided first (the teacher may answer instead), then sent piece by piece
                    written = _write_now(model, asked)
                    teacher = written.teacher_answered
                    words = written.text.split(" ")
                    for i, word in enumerate(words):
                        yield chunk(word if i == 0 else " " + word, None)
                    finish = written.finish_reason
                else:
                    for text in model.stream(asked):
                        if text:
                            yield chunk(text, None)
                    finish = "stop"
                yield chunk(None, finish)
                yield "data: [DONE]\n\n"
            finally:
                model.batcher.release(1)
                answered(row, "chat" if chat else "completions", started, 200, [teacher])

        return StreamingResponse(pieces(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    @api.get("/v1/models")
    async def models(request: Request) -> Response:
        viewer = await caller(serving, request)
        mine = await anyio.to_thread.run_sync(rows.served, serving.storage.db, viewer)
        data = [
            {
                "id": r.name,
                "object": "model",
                "created": int(r.created_at.timestamp()),
                "owned_by": r.owner or "you",
                "task": r.task,
                "run": r.job_id,
                "model": r.model,
            }
            for r in mine
        ]
        return JSONResponse({"object": "list", "data": data})

    @api.get("/api/v1/health")
    async def health() -> Response:
        return JSONResponse({"status": "ok"})

    @api.get("/metrics")
    async def metrics(request: Request) -> Response:
        viewer = await caller(serving, request)
        if serving.hosted and not viewer.is_admin:
            raise ApiError(403, "The metrics are the administrator's: use an administrator's key.", "permission_error")
        for model_id, model in list(serving._models.items()):
            if model_id in serving.labels:
                m.waiting.labels(serving.labels[model_id]).set(model.batcher.waiting)
        return PlainTextResponse(generate_latest(m.registry).decode(), media_type=CONTENT_TYPE_LATEST)

    app.include_router(api)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> Response:
        return err.response()


async def _answer(model: ServedModel, waiting):
    try:
        return await waiting
    except Overloaded:
        raise ApiError(
            429, "The model is busy: too many requests are waiting. Try again in a moment.", "rate_limit_error"
        ) from None


def _write_now(model: ServedModel, asked: Asked):
    """A hybrid's answer for a stream (in the stream's own thread, beside the batches)."""
    return model._write_batch([asked])[0]


def _messages(body: dict) -> list[dict]:
    messages = body.get("messages")
    if (
        not isinstance(messages, list)
        or not messages
        or not all(
            isinstance(x, dict) and isinstance(x.get("content"), str) and x.get("role") in ("system", "user", "assistant")
            for x in messages
        )
    ):
        raise ApiError(400, '\'messages\' must be a list of {"role": "user" | "assistant" | "system", "content": "..."}.')
    return messages


def _prompt(body: dict) -> str:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise ApiError(400, "'prompt' must be a string.")
    return prompt


def _asked(body: dict, prompt: str) -> Asked:
    tokens = {"max_tokens": body.get("max_completion_tokens", body.get("max_tokens"))}
    return Asked(
        prompt,
        max_tokens=int(_number(tokens, "max_tokens", 128, 1, MAX_NEW_TOKENS)),
        temperature=_number(body, "temperature", 0.0, 0.0, 2.0),
        top_p=_number(body, "top_p", 1.0, 0.0, 1.0),
    )


def create_serving_app(storage: Storage, hosted: bool, batching: bool = True) -> tuple[FastAPI, Serving]:
    """The API alone (`python -m studio serve`): no pages, the served models only."""
    app = FastAPI(title="SLM Studio API", docs_url=None, redoc_url=None, openapi_url=None)
    serving = Serving(storage, hosted, batching)
    add_serving_routes(app, serving)
    return app, serving
