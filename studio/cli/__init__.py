"""Command line: a thin shell over the pipeline modules. Errors become one plain message.

    shell.py     what every command shares (the app, errors, options made from settings, progress bars)
    steps.py     catalog, check-data, distill, evaluate, methods, compress, export, show
    serving.py   serve, deploy, deployments, undeploy, keys
    history.py   jobs, datasets, users
    tables.py    measured models as plain-text tables
Here: the welcome, ui, worker, and main.
"""

from __future__ import annotations

import os
import re
from typing import Annotated

import typer

from storage.config import studio_home
from storage.errors import StorageError
from studio.cli import history, serving, steps  # noqa: F401 - their commands register on the app
from studio.cli.shell import SAMPLES, app, friendly, open_history
from studio.logs import quiet_terminal


@app.callback(invoke_without_command=True)
def welcome(ctx: typer.Context) -> None:
    """With no command: show what is installed and how to start."""
    if ctx.invoked_subcommand is not None:
        return
    from studio.teacher import CATALOG, catalog_status

    typer.echo("SLM Studio. Open it in the browser with:  python -m studio ui\n\nOffline teachers:")
    for entry in CATALOG.values():
        typer.echo(f"  {entry.key:14} {entry.task:14} {catalog_status(entry)}")
    typer.echo(f"\nSample data: {SAMPLES / 'support_tickets.csv'}\n             {SAMPLES / 'shop_faq.jsonl'}")
    _history_line()
    typer.echo(f"\nTry:\n  python -m studio distill --data {SAMPLES / 'support_tickets.csv'}\n  python -m studio --help")


def _history_line() -> None:
    """Opening the history upgrades its schema: the studio's start is where that happens."""
    from storage import jobs as job_rows

    try:
        storage, me = open_history()
    except StorageError as err:
        typer.secho(f"\nJob history unavailable: {err}", fg=typer.colors.YELLOW)
        return
    with storage.db.session() as s:
        count = job_rows.count_jobs(s, me)
    where = storage.db.engine.url.render_as_string(hide_password=True)
    typer.echo(f"\nJob history: {count} job(s) in {where} ('python -m studio jobs list')")


@app.command()
@friendly
def ui(
    host: Annotated[
        str, typer.Option(help="Address to serve on (0.0.0.0 for a team server).", envvar="SLM_STUDIO_HOST")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on.", envvar="SLM_STUDIO_PORT")] = 7860,
    worker: Annotated[bool, typer.Option(help="Also run a worker for the jobs (off when workers run apart).")] = True,
) -> None:
    """Open the studio in the browser, with a worker for the jobs it starts."""
    from storage.config import open_storage
    from studio.accounts import ready_for_logins
    from studio.hosting import HostSettings

    if HostSettings.from_env().hosted:  # settings checked before the (slow) web stack loads: a wrong one fails at once
        ready_for_logins(open_storage().db)
    # Gradio keeps uploads in its cache folder: the studio's own private one, not a shared /tmp/gradio
    os.environ.setdefault("GRADIO_TEMP_DIR", str((studio_home() / "uploads").resolve()))
    from studio.ui.server import serve

    typer.echo(f"SLM Studio at http://{host}:{port}  (Ctrl-C to stop; running jobs save their step first)")
    serve(host, port, with_worker=worker)


@app.command()
@friendly
def worker(
    workers: Annotated[int, typer.Option(help="Jobs run at once (CPU threads are shared among them).")] = 1,
    tags: Annotated[
        str,
        typer.Option(
            help="Tags of this worker, comma-separated (it also gets 'gpu' or 'cpu' from its machine); "
            "a job submitted with --needs runs only on a worker with those tags.",
            envvar="SLM_STUDIO_WORKER_TAGS",
        ),
    ] = "",
) -> None:
    """Run queued jobs until stopped (Ctrl-C: running jobs save their step and stay resumable). Workers on several
    machines share the queue when they share the database (SLM_STUDIO_DB_URL) and the artifact store."""
    import logging

    from storage.config import open_storage
    from studio.jobs.worker import serve

    if workers < 1:
        raise typer.BadParameter("--workers must be at least 1.")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    given = [t.strip().lower() for t in tags.split(",") if t.strip()]
    bad = [t for t in given if not re.fullmatch(r"[a-z0-9_-]{1,32}", t)]
    if bad:
        raise typer.BadParameter(f"--tags: {', '.join(bad)} is not a tag; use short words (letters, digits, - or _).")
    serve(open_storage(), workers=workers, tags=given)


@app.command()
@friendly
def workers() -> None:
    """The workers taking jobs now: their machine (cores, memory, GPUs), job slots and tags."""
    from storage import workers as worker_rows
    from storage.config import open_storage

    rows = worker_rows.live(open_storage().db)
    if not rows:
        typer.echo("No worker is running. Start one with: python -m studio worker")
    for row in rows:
        capacity = worker_rows.Capacity(row.host, row.cores, row.memory_bytes, row.gpus, row.gpu_names)
        typer.echo(f"{row.host:20} {capacity.words():40} {row.slots} slot(s)  tags: {', '.join(row.tags)}")


def main() -> None:
    # Everything the studio writes (database, datasets, models, uploads) is its owner's alone: on a shared
    # server other accounts of the machine must not read users' data.
    os.umask(0o077)
    quiet_terminal(studio_home() / "logs" / "studio.log")  # a job's own log takes them while it runs
    app()
