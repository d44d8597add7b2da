"""``linkwatch lab up|down|status|cut|restore``: the namespace test network from a shell.

Every command needs root and says so in one sentence otherwise (exit code 1); any other
failure is one sentence too, never a traceback. See docs/lab.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from monitor.lab.impairment import LabError

app = typer.Typer(
    help="Build and tear down the network-namespace test lab (needs root).", no_args_is_help=True
)

PrefixOpt = Annotated[
    str, typer.Option("--prefix", help="Name prefix of the lab's namespaces (lw-gw, lw-ftb2...).")
]
FamilyOpt = Annotated[
    int | None,
    typer.Option("--family", min=4, max=6, help="Only IPv4 (4) or only IPv6 (6); default both."),
]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"linkwatch: {message}", err=True)
    return typer.Exit(1)


def _lab(prefix: str) -> Any:
    from monitor.lab.lab import Lab
    from monitor.lab.netns import require_root

    try:
        require_root()
        return Lab(prefix)
    except ValueError as exc:
        raise _fail(f"--prefix: {exc}") from None
    except LabError as exc:
        raise _fail(str(exc)) from None


@app.command()
def up(
    prefix: PrefixOpt = "lw",
    impairments: Annotated[
        Path | None,
        typer.Option(help="YAML file of per-site overrides, e.g. 'ftb2: {delay_s: 0.05}'."),
    ] = None,
    site: Annotated[
        list[str] | None, typer.Option("--site", help="Build only this site (repeatable).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the responder's random draws.")] = 1,
) -> None:
    """Build the lab (rebuilding it if it is up): namespaces, veths, the echo responder."""
    from monitor.lab.impairment import load_impairments

    lab = _lab(prefix)
    try:
        overrides = load_impairments(impairments) if impairments is not None else None
        status = lab.up(overrides, sites=site or None, seed=seed)
    except LabError as exc:
        raise _fail(str(exc)) from None
    _print_status(status)


@app.command()
def down(prefix: PrefixOpt = "lw") -> None:
    """Tear the lab down, leftovers of a crash included (idempotent)."""
    lab = _lab(prefix)
    try:
        removed = lab.down()
    except LabError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"lab {prefix} is down ({len(removed)} namespace(s) removed)")


@app.command()
def status(
    prefix: PrefixOpt = "lw",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show the lab: namespaces, addresses, impairments, cuts, the responder's counters."""
    lab = _lab(prefix)
    try:
        state = lab.status()
    except LabError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(status_json(state)))
    else:
        _print_status(state)


@app.command()
def cut(
    site: Annotated[str, typer.Argument()], prefix: PrefixOpt = "lw", family: FamilyOpt = None
) -> None:
    """Cut a site's link to the gateway (all traffic, or one address family)."""
    lab = _lab(prefix)
    if family not in (None, 4, 6):
        raise _fail("--family must be 4 or 6")
    try:
        lab.cut(site, family)
    except LabError as exc:
        raise _fail(str(exc)) from None
    what = "link" if family is None else f"IPv{family} path"
    typer.echo(f"{site}: {what} cut")


@app.command()
def restore(
    site: Annotated[str, typer.Argument()], prefix: PrefixOpt = "lw", family: FamilyOpt = None
) -> None:
    """Restore a site's link (undo cut)."""
    lab = _lab(prefix)
    if family not in (None, 4, 6):
        raise _fail("--family must be 4 or 6")
    try:
        lab.restore(site, family)
    except LabError as exc:
        raise _fail(str(exc)) from None
    what = "link" if family is None else f"IPv{family} path"
    typer.echo(f"{site}: {what} restored")


def status_json(state: Any) -> dict[str, Any]:
    """Return a :class:`~monitor.lab.lab.LabStatus` as a JSON-ready mapping."""
    return {
        "prefix": state.prefix,
        "up": state.up,
        "gateway_namespace": state.gateway_namespace,
        "gateway_present": state.gateway_present,
        "responder_pid": state.responder_pid,
        "responder_alive": state.responder_alive,
        "truth_path": str(state.truth_path),
        "leftovers": list(state.leftovers),
        "stats": state.stats,
        "sites": [
            {
                "id": s.site.id,
                "index": s.site.index,
                "namespace": s.site.namespace,
                "present": s.present,
                "cut": s.cut,
                "address": s.site.address,
                "gateway": s.site.gateway,
                "address6": s.site.address6,
                "gateway6": s.site.gateway6,
                "lan": s.site.lan,
                "impairment": s.impairment.model_dump(),
            }
            for s in state.sites
        ],
    }


def _print_status(state: Any) -> None:
    if not state.sites and not state.gateway_present:
        typer.echo(f"lab {state.prefix}: down")
        for name in state.leftovers:
            typer.echo(f"  leftover namespace {name} (run `linkwatch lab down`)")
        return
    alive = "running" if state.responder_alive else "NOT running"
    typer.echo(
        f"lab {state.prefix}: {'up' if state.up else 'incomplete'}; gateway namespace "
        f"{state.gateway_namespace} (10.200.0.1, fd00:200::1); responder {alive} "
        f"(pid {state.responder_pid})"
    )
    typer.echo(
        f"  {'site':<6} {'namespace':<12} {'address':<12} {'gateway':<12} {'delay':>7} "
        f"{'jitter':>7} {'loss':>6} {'link':<8}"
    )
    for s in state.sites:
        imp = s.impairment
        link = "missing" if not s.present else (f"cut:{s.cut}" if s.cut else "ok")
        typer.echo(
            f"  {s.site.id:<6} {s.site.namespace:<12} {s.site.address:<12} "
            f"{s.site.gateway:<12} {imp.delay_s * 1e3:>5.0f}ms {imp.jitter_s * 1e3:>5.0f}ms "
            f"{imp.loss * 100:>5.1f}% {link:<8}"
        )
    stats = state.stats or {}
    if stats:
        typer.echo(
            f"  responder: {stats.get('requests', 0)} requests, {stats.get('answered', 0)} "
            f"answered, {stats.get('dropped_loss', 0)} dropped (loss), "
            f"{stats.get('dropped_outage', 0)} dropped (outage), "
            f"{stats.get('socket_drops', 0)} socket drops; truth in {state.truth_path}"
        )
    for name in state.leftovers:
        typer.echo(f"  leftover namespace {name} (run `linkwatch lab down`)")
