"""The web server: the Gradio studio, plus the routes a browser or a container needs beside it.

    /                  the studio (hosted: after logging in at /login)
    /login, /logout    hosted: the login page and throttled login; logout (POST) ends every session of the user
    /healthz           database and artifact store reachable: 200, else 503 (no login: for health checks)
    /download/<job>    an export job's zip, only for its owner (or an admin), checked in the storage query
    /v1/..., /api/v1/  the served models' API (studio/serve/api.py): programs call with a key, not a login

Every request first passes the guard (studio/ui/guard.py): known routes only, the session looked up,
origin, size, and the files and page sessions it names checked against the caller. Around it: CORS for
the configured origins only, and security headers on every answer (the `secure` library).
Settings come from the environment (studio/hosting.py), so a container is configured without rebuilding it.
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

import gradio as gr
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from gradio.utils import get_upload_folder
from secure import (
    ContentSecurityPolicy,
    CrossOriginOpenerPolicy,
    CrossOriginResourcePolicy,
    PermissionsPolicy,
    ReferrerPolicy,
    Secure,
    StrictTransportSecurity,
    XContentTypeOptions,
    XFrameOptions,
)
from secure.middleware.asgi import SecureASGIMiddleware
from sqlalchemy import text
from starlette.middleware.cors import CORSMiddleware

from storage import jobs as job_rows
from storage import records
from storage.config import Storage, open_storage, studio_home
from storage.errors import NotFoundError
from studio.accounts import ready_for_logins
from studio.errors import AccessError
from studio.hosting import HostSettings
from studio.logs import quiet_libraries
from studio.serve.api import Serving, add_serving_routes
from studio.ui.app import PAGE_CSS, StudioApp, build_app
from studio.ui.guard import RequestGuard
from studio.ui.login import Logins, add_login_routes
from studio.ui.owners import Owners

ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger("studio.server")


def create_server(storage: Storage | None = None, settings: HostSettings | None = None) -> tuple[FastAPI, StudioApp]:
    settings = settings or HostSettings.from_env()
    storage = storage or open_storage()
    if settings.hosted:
        ready_for_logins(storage.db)
    owners = Owners(get_upload_folder())
    studio = build_app(storage, hosted=settings.hosted, owners=owners)
    api = FastAPI(title="SLM Studio", docs_url=None, redoc_url=None, openapi_url=None)

    def viewer_of(request: Request):
        try:
            return studio.ctx.viewer_for(request.scope)
        except AccessError:  # the guard lets no such request through; checked here too
            raise HTTPException(status_code=401, detail="Log in first.") from None

    @api.get("/healthz")
    def health() -> JSONResponse:
        report = {"database": "ok", "artifacts": "ok", "auth": settings.auth}
        try:
            with storage.db.session() as s:
                s.execute(text("SELECT 1"))
        except Exception as err:  # noqa: BLE001 - any failure is "unhealthy", named for the operator
            report["database"] = f"unreachable ({type(err).__name__})"
        root = storage.store.root
        if not (root.is_dir() and os.access(root, os.W_OK)):  # the path itself only in the server's log
            report["artifacts"] = "the artifact store is missing or not writable (SLM_STUDIO_DATA_DIR)"
            log.error("artifact store %s is missing or not writable", root)
        healthy = report["database"] == "ok" and report["artifacts"] == "ok"
        return JSONResponse({"status": "ok" if healthy else "unhealthy", **report}, status_code=200 if healthy else 503)

    @api.get("/download/{job_id}")
    def download(job_id: str, request: Request) -> FileResponse:
        viewer = viewer_of(request)
        files = []
        if job_id.isdigit():
            try:
                with storage.db.session() as s:
                    job_rows.get(s, viewer, int(job_id))
                    files = [a for a in records.artifacts_of(s, viewer, int(job_id)) if a.kind == "export"]
            except NotFoundError:
                pass
        if not files or not storage.store.local(files[0].path).is_file():
            raise HTTPException(status_code=404, detail=f"No export {job_id[:24]} for you to download.")
        path = storage.store.resolve(files[0].path)
        return FileResponse(
            path, media_type="application/zip", filename=path.name, headers={"Cache-Control": "private, no-store"}
        )

    if settings.hosted:
        add_login_routes(api, Logins(storage, settings), owners.forget_user)
    # the served models' API (before the page, which takes every other path); the router checks its callers' keys
    api.state.serving = Serving(storage, settings.hosted)
    add_serving_routes(api, api.state.serving)

    gr.mount_gradio_app(
        api,
        studio.blocks,
        "/",
        footer_links=[],
        show_error=False,
        max_file_size=f"{settings.max_upload_mb}mb",
        # the guard has already found the session; Gradio only learns the user's name from it
        auth_dependency=(lambda request: request.scope.get("studio.user")) if settings.hosted else None,
        # System fonts only: nothing is fetched from a font CDN, so the page renders offline.
        theme=gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]),
        css=PAGE_CSS,
    )
    # added last = runs first: headers on every answer, then CORS, then the guard
    api.add_middleware(RequestGuard, storage=storage, settings=settings, owners=owners)
    api.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.allowed_origins),
        allow_credentials=True,
        allow_methods=["GET", "POST"],
        allow_headers=["content-type"],
    )
    api.add_middleware(SecureASGIMiddleware, secure=security_headers())
    return api, studio


def security_headers() -> Secure:
    """The page may load and send data only to this server, is never framed, and posts forms only here.
    Gradio's page needs inline scripts and styles (its config is inline) and 'unsafe-eval' (gr.HTML renders
    its templates with `new Function`), so those stay allowed; what limits a script that got in anyway is
    connect-src/form-action 'self': it has nowhere else to send what it reads."""
    csp = (
        ContentSecurityPolicy()
        .default_src("'self'")
        .base_uri("'self'")
        .connect_src("'self'")
        .font_src("'self'", "data:")
        .form_action("'self'")
        .frame_ancestors("'none'")
        .img_src("'self'", "data:", "blob:")
        .media_src("'self'", "blob:")
        .object_src("'none'")
        .script_src("'self'", "'unsafe-inline'", "'unsafe-eval'")
        .style_src("'self'", "'unsafe-inline'")
        .worker_src("'self'", "blob:")
    )
    return Secure(
        csp=csp,
        xfo=XFrameOptions().deny(),
        xcto=XContentTypeOptions(),
        referrer=ReferrerPolicy().strict_origin_when_cross_origin(),
        hsts=StrictTransportSecurity().max_age(31536000),  # browsers heed it over HTTPS only
        coop=CrossOriginOpenerPolicy().same_origin(),
        corp=CrossOriginResourcePolicy().same_origin(),
        permissions=PermissionsPolicy().geolocation().microphone().camera(),
    )


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
    server = uvicorn.Server(uvicorn.Config(api, host=host, port=port, log_level="warning", proxy_headers=False))
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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # "will assume transactional DDL" on every start
    quiet_libraries(studio_home() / "logs" / "studio.log")
    settings = HostSettings.from_env()
    api, _ = create_server(settings=settings)
    api.state.serving.warm()  # the models served before the restart answer again
    worker = None
    if with_worker:
        worker = subprocess.Popen([sys.executable, "-m", "studio", "worker"], env={**os.environ, "PYTHONPATH": str(ROOT)})
    # uvicorn stops gracefully on SIGTERM, then raises the signal again: with the default handler that ends the
    # process on the spot, before `finally` stops the worker. This handler turns it into a normal exit instead.
    signal.signal(signal.SIGTERM, _exit_quietly)
    try:
        # open event streams (timers of open pages) must not hold a stopping server for ever
        # client addresses (login limits) come from X-Forwarded-For only when the proxy sending it is trusted
        proxies = settings.trusted_proxies
        uvicorn.run(
            api,
            host=host,
            port=port,
            log_level="warning",
            timeout_graceful_shutdown=5,
            proxy_headers=bool(proxies),
            forwarded_allow_ips=proxies or None,
        )
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)  # running jobs save their step and stay resumable
            try:
                worker.wait(timeout=120)
            except subprocess.TimeoutExpired:
                worker.kill()


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)
