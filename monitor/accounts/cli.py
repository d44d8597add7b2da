"""``linkwatch user add|list|passwd|role|delete``: status-page users and their roles.

The database is named by ``--config FILE`` (its ``server.database_url``) or ``--url``.
Passwords are asked twice on the terminal (never echoed, never an argument: arguments show
in ``ps`` and shell history) or read from standard input with ``--password-stdin``.
Errors are one sentence on stderr: exit 2 for bad input, 1 when the database fails.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from monitor.accounts.passwords import PasswordError, check_new_password
from monitor.accounts.users import (
    AccountError,
    Role,
    add_user,
    delete_user,
    list_users,
    set_password,
    set_role,
)

app = typer.Typer(
    help="Status-page users and roles (viewer, operator, admin).", no_args_is_help=True
)

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="Config file (its server.database_url).")
]
UrlOpt = Annotated[str | None, typer.Option("--url", help="SQLAlchemy database URL.")]
StdinOpt = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]
UserArg = Annotated[str, typer.Argument(help="The user name (any script; case-insensitive).")]


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"linkwatch user: {message}", err=True)
    return typer.Exit(code)


def _database_url(config: Path | None, url: str | None) -> str:
    if (config is None) == (url is None):
        raise _fail("give exactly one of --config or --url")
    if url is not None:
        return url
    from monitor.config import ConfigError
    from monitor.config_loader import load_config

    assert config is not None
    try:
        return load_config(config).server.database_url
    except ConfigError as exc:
        for line in exc.messages:
            typer.echo(line, err=True)
        raise typer.Exit(2) from None


@contextmanager
def _session(config: Path | None, url: str | None) -> Iterator[Session]:
    """Yield a session in a transaction on the database; commit on success."""
    from monitor.storage.db import make_engine

    engine = make_engine(_database_url(config, url), pooled=False)
    try:
        with sessionmaker(engine).begin() as session:
            yield session
    except SQLAlchemyError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _fail(
            f"the database failed ({first}); is it reachable and at the newest schema "
            "(`linkwatch db upgrade`)?",
            1,
        ) from None
    finally:
        engine.dispose()


def _password(from_stdin: bool) -> str:
    if from_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    else:
        value = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        check_new_password(value)
    except PasswordError as exc:
        raise _fail(str(exc)) from None
    return value


def _now() -> datetime:
    return datetime.now(UTC)


@app.command("add")
def add(
    username: UserArg,
    role: Annotated[Role, typer.Option("--role", "-r", help="viewer, operator or admin.")] = (
        Role.VIEWER
    ),
    password_stdin: StdinOpt = False,
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Add a user with a role; asks for the password."""
    _database_url(config, url)
    password = _password(password_stdin)
    try:
        with _session(config, url) as session:
            user = add_user(session, username, role, password, _now())
    except (AccountError, PasswordError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"added {user.username} ({user.role})")


@app.command("list")
def list_(config: ConfigOpt = None, url: UrlOpt = None) -> None:
    """List users: name, role, when the password last changed (UTC)."""
    with _session(config, url) as session:
        users = list_users(session)
    if not users:
        typer.echo("no users")
    for user in users:
        changed = user.password_changed_at.strftime("%Y-%m-%d %H:%M")
        typer.echo(f"{user.username}\t{user.role}\tpassword set {changed} UTC")


@app.command("passwd")
def passwd(
    username: UserArg,
    password_stdin: StdinOpt = False,
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Set a user's password (ends the user's open sessions)."""
    _database_url(config, url)
    password = _password(password_stdin)
    try:
        with _session(config, url) as session:
            set_password(session, username, password, _now())
    except (AccountError, PasswordError) as exc:
        raise _fail(str(exc)) from None
    typer.echo("password changed; the user's sessions were ended")


@app.command("role")
def role(
    username: UserArg,
    new_role: Annotated[Role, typer.Argument(help="viewer, operator or admin.")],
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Change a user's role."""
    try:
        with _session(config, url) as session:
            set_role(session, username, new_role)
    except AccountError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"role changed to {new_role}")


@app.command("delete")
def delete(username: UserArg, config: ConfigOpt = None, url: UrlOpt = None) -> None:
    """Delete a user and end their sessions."""
    try:
        with _session(config, url) as session:
            delete_user(session, username)
    except AccountError as exc:
        raise _fail(str(exc)) from None
    typer.echo("deleted")
