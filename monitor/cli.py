"""The ``linkwatch`` command: server, agent, demo, probe, check-config, db.

Every user-facing error is one sentence on stderr and a non-zero exit code, never a
traceback: 2 for bad input (arguments, configuration), 1 for a failed run.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from monitor.cli_common import fail as _fail
from monitor.cli_common import load_config_or_exit as _load

app = typer.Typer(
    name="linkwatch",
    help="Linkwatch: link health and latency monitoring for remote sites.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema (alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _register_subcommands() -> None:
    from monitor.accounts.cli import app as user_app
    from monitor.alerting.maintenance_cli import app as maintenance_app
    from monitor.alerting.notify_cli import app as notify_app
    from monitor.availability.cli import app as report_app
    from monitor.lab.cli import app as lab_app

    app.add_typer(lab_app, name="lab")
    app.add_typer(report_app, name="report")
    app.add_typer(maintenance_app, name="maintenance")
    app.add_typer(notify_app, name="notify")
    app.add_typer(user_app, name="user")


ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="The YAML configuration file.", show_default=False)
]


def _setup_logging(verbose: bool, log_format: str | None = None) -> None:
    from monitor.logging_setup import resolve_format, setup_logging

    try:
        setup_logging(verbose, resolve_format(log_format))
    except ValueError as exc:
        raise _fail(str(exc)) from None
    for noisy in ("alembic", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


LogFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--log-format",
        help="text or json (one object per line); default $LINKWATCH_LOG_FORMAT or text.",
        show_default=False,
    ),
]


@app.command("check-config")
def check_config(
    files: Annotated[list[Path], typer.Argument(help="Configuration files to check.")],
) -> None:
    """Validate configuration files; print every problem with file:line:column and key path."""
    from monitor.config_loader import check_config_command

    raise typer.Exit(check_config_command(files))


@app.command()
def server(
    config: ConfigOpt,
    host: Annotated[str | None, typer.Option(help="Listen address (default: server.host).")] = None,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Listen port (default: server.port).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug detail.")] = False,
    log_format: LogFormatOpt = None,
) -> None:
    """Run the central service: ingest, JSON API, status page, /metrics."""
    _setup_logging(verbose, log_format)
    cfg = _load(config)
    from monitor.server import run_server

    raise typer.Exit(run_server(cfg, host=host, port=port, verbose=verbose))


@app.command()
def agent(
    config: ConfigOpt,
    site: Annotated[str, typer.Option("--site", "-s", help="The site id this agent runs at.")],
    duration: Annotated[
        float | None, typer.Option(min=0.1, help="Stop by itself after this many seconds.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug detail.")] = False,
    log_format: LogFormatOpt = None,
) -> None:
    """Run a site's probe agent: probe, spool locally, upload to the server."""
    _setup_logging(verbose, log_format)
    cfg = _load(config)
    if site not in cfg.sites:
        raise _fail(f"--site: unknown site {site!r}; the config has: {', '.join(cfg.sites)}")
    from monitor.agent.runner import main_agent, tune_garbage_collector

    tune_garbage_collector()
    raise typer.Exit(main_agent(cfg, site, duration_s=duration))


@app.command()
def demo(
    duration: Annotated[
        float | None, typer.Option(min=1, help="Stop by itself after this many seconds.")
    ] = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Server port.")] = 8080,
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Where the demo writes its config, DB and spools.")
    ] = Path("linkwatch-data"),
) -> None:
    """Run the server and seven site agents on loopback targets, with SQLite."""
    _setup_logging(False)
    from monitor.demo import run_demo

    raise typer.Exit(run_demo(duration_s=duration, port=port, data_dir=data_dir))


@app.command()
def probe(
    kind: Annotated[str, typer.Argument(help="icmp, tcp, http or dns.")],
    targets: Annotated[list[str], typer.Argument(help="Hosts, host:port, URLs or DNS servers.")],
    count: Annotated[
        int,
        typer.Option(min=1, max=1000, help="ICMP: echo requests per round; other kinds: attempts."),
    ] = 5,
    interval: Annotated[
        float, typer.Option(min=0.0, max=60, help="Seconds between requests (ICMP) or attempts.")
    ] = 0.2,
    timeout: Annotated[float, typer.Option(min=0.01, max=300, help="Seconds to wait.")] = 2.0,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="TCP/DNS port.")] = None,
    name: Annotated[str | None, typer.Option(help="DNS: the name to query.")] = None,
    record_type: Annotated[str, typer.Option("--type", help="DNS: the record type.")] = "A",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per target.")] = False,
) -> None:
    """Run one probe round by hand against each TARGET and print the result."""
    from monitor.probe_command import run_probe_command

    raise typer.Exit(
        run_probe_command(
            kind,
            targets,
            count=count,
            interval_s=interval,
            timeout_s=timeout,
            as_json=as_json,
            port=port,
            query_name=name,
            record_type=record_type,
        )
    )


@db_app.command("upgrade")
def db_upgrade(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Config file.")] = None,
    url: Annotated[str | None, typer.Option(help="SQLAlchemy database URL.")] = None,
) -> None:
    """Create or migrate the schema to the newest revision (alembic upgrade head)."""
    if (config is None) == (url is None):
        raise _fail("give exactly one of --config or --url")
    db_url = url if url is not None else _load(config).server.database_url  # type: ignore[arg-type]
    from monitor.storage.migrate import upgrade

    missing = _missing_sqlite_directory(db_url)
    if missing is not None:
        raise _fail(
            f"database upgrade failed for {_redact(db_url)}: the directory {missing} does not "
            "exist (create it, owned by the user the server runs as)",
            1,
        )
    try:
        upgrade(db_url)
    except Exception as exc:  # the database is outside our control: say what failed
        reason = _without_sqlalchemy_link(str(exc))
        raise _fail(f"database upgrade failed for {_redact(db_url)}: {reason}", 1) from None
    typer.echo(f"database at schema head: {_redact(db_url)}")


def _missing_sqlite_directory(url: str) -> Path | None:
    """Return the missing parent directory of a SQLite file URL, else ``None``."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    parent = Path(str(parsed.database)).parent
    return None if parent.is_dir() else parent


def _without_sqlalchemy_link(message: str) -> str:
    """Drop SQLAlchemy's "(Background on this error at: ...)" trailer from an error text."""
    return message.split("\n(Background on this error at:", 1)[0].strip()


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable URL>"


def main() -> None:
    """Entry point of the ``linkwatch`` console script."""
    _register_subcommands()
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
