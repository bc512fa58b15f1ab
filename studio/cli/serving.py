"""Serving from the command line: serve, deploy, deployments, undeploy, keys (the Deploy step's commands)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from studio.cli.shell import app, friendly, open_history

keys_app = typer.Typer(help="Keys programs call your served models with: create, list, revoke.")
app.add_typer(keys_app, name="keys")


@app.command()
@friendly
def serve(
    host: Annotated[str, typer.Option(help="Address to serve on; 0.0.0.0 lets other machines call (keys needed).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to serve on.")] = 8000,
    batching: Annotated[bool, typer.Option(help="Answer requests that arrive together in one pass of the model.")] = True,
) -> None:
    """Serve your deployed models over HTTP without the studio's pages: OpenAI-compatible /v1/chat/completions
    for text generators, /api/v1/models/<name>/classify for classifiers. On this machine alone unless --host says
    otherwise; a call from another machine needs a key ('keys create')."""
    import logging

    import uvicorn

    from storage.config import open_storage
    from studio.hosting import HostSettings
    from studio.serve.api import create_serving_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    storage = open_storage()
    api, serving = create_serving_app(storage, HostSettings.from_env().hosted, batching=batching)
    serving.warm()
    typer.echo(f"Serving at http://{host}:{port}/v1  ({len(_served(storage))} model(s); Ctrl-C to stop)")
    uvicorn.run(api, host=host, port=port, log_level="warning")


def _served(storage):
    from storage import serving

    return serving.served(storage.db)


@app.command()
@friendly
def deploy(
    job: Annotated[int, typer.Argument(help="The id of a finished distillation ('jobs list').")],
    model: Annotated[str, typer.Option(help="'student', 'teacher' or a variant's name.")] = "student",
    name: Annotated[str, typer.Option(help="What programs call it (default: job<id>-<model>).")] = "",
    hybrid: Annotated[bool, typer.Option(help="The run's teacher answers when the model is unsure.")] = True,
    threshold: Annotated[
        Optional[float], typer.Option(help="Hand-over threshold, 0-1 (default: the one the run's evaluation chose).")
    ] = None,
    url: Annotated[str, typer.Option(help="Where the studio or 'serve' answers, for the examples.")] = "http://127.0.0.1:8000",
) -> None:
    """Serve a model of a finished run (from the studio, and from 'python -m studio serve')."""
    from studio.jobs import service
    from studio.serve.snippets import curl_line, python_snippet

    storage, me = open_history()
    row = service.deploy(storage, me, job, model, name, hybrid, threshold)
    typer.echo(f"Serving {model} of job {job} as '{row.name}'. Call it with:\n")
    typer.echo(curl_line(url, row.name, row.task) + "\n")
    typer.echo(python_snippet(url, row.name, row.task))


@app.command()
@friendly
def deployments() -> None:
    """The models you serve."""
    from storage import serving

    storage, me = open_history()
    rows = serving.served(storage.db, me)
    if not rows:
        typer.echo("You serve no model. Serve one with: python -m studio deploy JOB")
    for r in rows:
        typer.echo(f"{r.id:4}  {r.name:30} {r.model} of job {r.job_id} ({r.task}), since {r.created_at:%Y-%m-%d %H:%M}")


@app.command()
@friendly
def undeploy(name: Annotated[str, typer.Argument(help="The name it is served under ('deployments').")]) -> None:
    """Stop serving a model (a running server stops answering for it at once)."""
    from storage import serving

    storage, me = open_history()
    row = serving.find_served(storage.db, me, name)
    if row is None:
        raise typer.BadParameter(f"you serve no model named '{name}' ('deployments' lists them)")
    serving.stop(storage.db, me, row.id)
    typer.echo(f"Stopped serving '{name}'.")


@keys_app.command("create")
@friendly
def create_key(name: Annotated[str, typer.Option(help="What the key is for (e.g. helpdesk).")] = "") -> None:
    """Make a key; it is shown once, here."""
    from storage import serving

    storage, me = open_history()
    made = serving.make_key(storage.db, me, name)
    typer.echo(f"{made.key}\n\nKeep it now: it is not shown again. Programs send it as 'Authorization: Bearer <key>'.")


@keys_app.command("list")
@friendly
def list_keys() -> None:
    """Your keys (their first characters), made and last used."""
    from storage import serving

    storage, me = open_history()
    for k in serving.keys_of(storage.db, me):
        state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
        used = f"last used {k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never used"
        typer.echo(f"{k.id:4}  {k.prefix}…  {k.name or '-':20} {state}, {used}")


@keys_app.command("revoke")
@friendly
def revoke_key(key_id: Annotated[int, typer.Argument(help="The key's number ('keys list').")]) -> None:
    """Revoke a key: calls with it are refused from now on."""
    from storage import serving

    storage, me = open_history()
    serving.revoke_key(storage.db, me, key_id)
    typer.echo(f"Key {key_id} revoked.")
