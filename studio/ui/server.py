"""The web server: the Gradio studio, plus the routes a browser or a container needs beside it.

    /                  the studio (login first when SLM_STUDIO_AUTH=users)
    /healthz           database and artifact store reachable: 200, else 503 (no login: for health checks)
    /download/<job>    an export job's zip, only for its owner (or an admin), checked in the storage query

Settings come from the environment, so a container is configured without rebuilding it:
SLM_STUDIO_AUTH, SLM_STUDIO_MAX_UPLOAD_MB, SLM_STUDIO_HOST, SLM_STUDIO_PORT (and storage's own).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import anyio
import gradio as gr
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy import text
from starlette.routing import Mount

from storage import jobs as job_rows
from storage import records
from storage.config import Storage, open_storage
from storage.errors import NotFoundError
from studio.accounts import auth_mode, check_login, max_upload_mb, ready_for_logins
from studio.errors import AccessError
from studio.ui.app import StudioApp, build_app

ROOT = Path(__file__).resolve().parents[2]


def create_server(storage: Storage | None = None, *, hosted: bool | None = None,
                  upload_mb: int | None = None) -> tuple[FastAPI, StudioApp]:
    storage = storage or open_storage()
    hosted = auth_mode() == "users" if hosted is None else hosted
    upload_mb = upload_mb or max_upload_mb()
    if hosted:
        ready_for_logins(storage.db)
    studio = build_app(storage, hosted=hosted)
    api = FastAPI(title="SLM Studio", docs_url=None, redoc_url=None, openapi_url=None)

    def viewer_of(request: Request):
        if not hosted:
            return studio.ctx.viewer()
        try:
            return studio.ctx.user_named(_gradio_user(api, request))
        except AccessError as err:
            raise HTTPException(status_code=401, detail=str(err)) from None

    @api.get("/healthz")
    def health() -> JSONResponse:
        report = {"database": "ok", "artifacts": "ok", "auth": "users" if hosted else "none"}
        try:
            with storage.db.session() as s:
                s.execute(text("SELECT 1"))
        except Exception as err:  # noqa: BLE001 - any failure is "unhealthy", named for the operator
            report["database"] = f"unreachable ({type(err).__name__})"
        root = storage.store.root
        if not (root.is_dir() and os.access(root, os.W_OK)):  # the path itself only in the server's log
            report["artifacts"] = "the artifact store is missing or not writable (SLM_STUDIO_DATA_DIR)"
            logging.getLogger("studio.server").error("artifact store %s is missing or not writable", root)
        healthy = report["database"] == "ok" and report["artifacts"] == "ok"
        return JSONResponse({"status": "ok" if healthy else "unhealthy", **report}, status_code=200 if healthy else 503)

    @api.get("/download/{job_id}")
    def download(job_id: int, request: Request) -> FileResponse:
        viewer = viewer_of(request)
        try:
            with storage.db.session() as s:
                job_rows.get(s, viewer, job_id)
                files = [a for a in records.artifacts_of(s, viewer, job_id) if a.kind == "export"]
        except NotFoundError:
            files = []
        if not files or not storage.store.resolve(files[0].path).is_file():
            raise HTTPException(status_code=404, detail=f"No export {job_id} for you to download.")
        path = storage.store.resolve(files[0].path)
        return FileResponse(path, media_type="application/zip", filename=path.name)

    @api.middleware("http")
    async def refuse_oversized(request: Request, call_next):
        """A declared size over the limit is refused before a byte is read (Gradio also stops a stream
        without a declared size once it passes the limit)."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > (upload_mb + 1) * 1024 * 1024:
            return JSONResponse({"detail": f"This upload is {int(declared) / 1024 ** 2:,.0f} MB; the studio accepts "
                                           f"files up to {upload_mb:,} MB. Upload a smaller file (or ask the "
                                           "administrator to raise SLM_STUDIO_MAX_UPLOAD_MB)."}, status_code=413)
        return await call_next(request)

    gr.mount_gradio_app(
        api, studio.blocks, "/", footer_links=[], show_error=False, max_file_size=f"{upload_mb}mb",
        auth=_login_checker(storage) if hosted else None,
        auth_message="SLM Studio: log in with the account your administrator made for you." if hosted else None,
        # System fonts only: nothing is fetched from a font CDN, so the page renders offline.
        theme=gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]))
    return api, studio


def _login_checker(storage: Storage):
    async def login(name: str, password: str) -> bool:
        # Argon2 is slow on purpose: verify off the event loop so other users' pages stay responsive
        return await anyio.to_thread.run_sync(lambda: check_login(storage.db, name, password) is not None)

    return login


def _gradio_user(api: FastAPI, request: Request) -> str | None:
    """The name Gradio's login put behind this browser's cookie (None when not logged in)."""
    app = next(r.app for r in api.routes if isinstance(r, Mount))
    token = request.cookies.get(f"access-token-{app.cookie_id}") or \
        request.cookies.get(f"access-token-unsecure-{app.cookie_id}")
    return app.tokens.get(token) if token else None


@dataclass
class Running:
    """A server started in a thread (tests, benchmarks): its address and how to stop it."""

    url: str
    server: uvicorn.Server
    thread: threading.Thread
    studio: StudioApp

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def start_in_thread(api: FastAPI, studio: StudioApp, host: str = "127.0.0.1", port: int = 0) -> Running:
    server = uvicorn.Server(uvicorn.Config(api, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"the studio could not start on {host}:{port}")
        time.sleep(0.05)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return Running(f"http://{host}:{bound}/", server, thread, studio)


def serve(host: str, port: int, with_worker: bool = True) -> None:
    """Serve the studio until stopped. On a laptop it also starts one worker process, so Start just works;
    a team server can run its workers apart (`with_worker=False`)."""
    api, _ = create_server()
    worker = None
    if with_worker:
        worker = subprocess.Popen([sys.executable, "-m", "studio", "worker"],
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        # open event streams (timers of open pages) must not hold a stopping server for ever
        uvicorn.run(api, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)  # running jobs save their step and stay resumable
            worker.wait(timeout=120)
