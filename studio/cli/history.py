"""The job history, checked datasets and the accounts of a hosted studio: jobs, datasets, users."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from storage.tables import JobStatus
from studio.cli.shell import (
    app,
    friendly,
    open_history,
    run_job,
)
from studio.cli.steps import show

jobs_app = typer.Typer(help="The job history: list, follow, cancel, resume, delete.")
app.add_typer(jobs_app, name="jobs")


@jobs_app.command("list")
@friendly
def jobs_list(status: Annotated[Optional[str], typer.Option(help="Only jobs with this status.")] = None, limit: int = 30) -> None:
    """Newest jobs first."""
    from storage import jobs as job_rows

    storage, me = open_history()
    with storage.db.session() as s:
        rows = job_rows.list_jobs(s, me, limit=limit, status=status)
    if not rows:
        typer.echo("No jobs yet. Start one with 'python -m studio distill --data FILE'.")
    for j in rows:
        loss = f"  loss {j.last_loss:.4f}" if j.last_loss is not None else ""
        typer.echo(f"{j.id:5}  {j.created_at:%Y-%m-%d %H:%M}  {j.kind:9} {j.status:11} {j.progress:4.0%}  {j.title}{loss}")


@jobs_app.command("show")
@friendly
def jobs_show(job: int) -> None:
    """Same as 'show': state, settings, variants and files of one job."""
    show(job)


@jobs_app.command("cancel")
@friendly
def jobs_cancel(job: int) -> None:
    """Cancel a queued job, or stop a running one after its current step (it can be resumed)."""
    from studio.jobs import service

    storage, me = open_history()
    now = service.cancel(storage, me, job)
    typer.echo(f"Job {job} cancelled." if now == JobStatus.CANCELLED else f"Job {job} stops after its current step.")


@jobs_app.command("resume")
@friendly
def jobs_resume(job: int, queue: Annotated[bool, typer.Option(help="Hand it to the worker.")] = False) -> None:
    """Continue an interrupted, cancelled or failed job from its last checkpoint."""
    from studio.jobs import service

    storage, me = open_history()
    service.resume(storage, me, job, enqueue=False)
    if run_job(storage, me, job, queue) == JobStatus.DONE:
        typer.echo(f"Job {job} finished.")


@jobs_app.command("delete")
@friendly
def jobs_delete(job: int, yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False) -> None:
    """Delete a job, the jobs built on it, and all their files."""
    from studio.jobs import service

    storage, me = open_history()
    if not yes:
        typer.confirm(f"Delete job {job}, every job built on it, and their files?", abort=True)
    gone = service.delete(storage, me, job)
    typer.echo(f"Deleted job(s) {', '.join(map(str, gone))} and their files.")


users_app = typer.Typer(help="Accounts of a hosted studio (SLM_STUDIO_AUTH=users): add, list, passwd, disable.")
app.add_typer(users_app, name="users")


def _password(stdin: bool) -> str:
    if stdin:
        return sys.stdin.readline().rstrip("\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@users_app.command("add")
@friendly
def users_add(
    name: str,
    admin: Annotated[bool, typer.Option(help="May see and manage every user's work.")] = False,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard input.")] = False,
) -> None:
    """Add a user who logs in to the hosted studio (the password is stored as an Argon2 hash)."""
    from storage.config import open_storage
    from studio.accounts import add_user

    add_user(open_storage().db, name, _password(password_stdin), admin=admin)
    typer.echo(f"User {name} added{' (admin)' if admin else ''}.")


@users_app.command("list")
@friendly
def users_list() -> None:
    """The users who can log in."""
    from storage.config import open_storage
    from storage.records import list_users

    with open_storage().db.session() as s:
        users = [(u.id, u.name, u.is_admin) for u in list_users(s)]
    for user_id, name, is_admin in users:
        typer.echo(f"{user_id:>4}  {name}{'  (admin)' if is_admin else ''}")
    if not users:
        typer.echo("No users yet: add one with 'python -m studio users add NAME --admin'.")


@users_app.command("passwd")
@friendly
def users_passwd(name: str, password_stdin: Annotated[bool, typer.Option(help="Read it from standard input.")] = False) -> None:
    """Set a new password for a user."""
    from storage.config import open_storage
    from studio.accounts import change_password

    ended = change_password(open_storage().db, name, _password(password_stdin))
    typer.echo(f"Password of {name} changed; {ended} open session(s) ended (they log in again).")


@users_app.command("disable")
@friendly
def users_disable(name: str) -> None:
    """Stop a user from logging in (their jobs and files stay; an admin still sees them)."""
    from storage.config import open_storage
    from studio.accounts import disable_user

    ended = disable_user(open_storage().db, name)
    typer.echo(f"User {name} can no longer log in; {ended} open session(s) ended at once.")


datasets_app = typer.Typer(help="Checked datasets kept for your runs: list, delete.")
app.add_typer(datasets_app, name="datasets")


@datasets_app.command("list")
@friendly
def datasets_list() -> None:
    """Your datasets, newest first (a file checked again the same way reuses its entry)."""
    from storage.records import list_datasets

    storage, me = open_history()
    with storage.db.session() as s:
        rows = list_datasets(s, me)
        for ds in rows:
            typer.echo(f"{ds.id:5}  {ds.created_at:%Y-%m-%d %H:%M}  {ds.task:14} {ds.rows:7,} rows  {ds.name}")
    if not rows:
        typer.echo("No datasets yet; 'distill --data FILE' checks and keeps one.")


@datasets_app.command("delete")
@friendly
def datasets_delete(dataset: int) -> None:
    """Delete a dataset's checked copy (refused while a job still uses it)."""
    from storage.records import delete_dataset

    storage, me = open_history()
    delete_dataset(storage.db, storage.store, me, dataset)
    typer.echo(f"Deleted dataset {dataset}.")
