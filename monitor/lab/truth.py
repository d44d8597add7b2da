"""The responder's ground truth: one JSON line per echo request it saw, and how to read it.

Each line of ``truth.jsonl`` (in the lab's state directory) says what the responder really
did with one echo request::

    {"t_ns": 1767250000123456789, "site": "ftb2", "family": 4, "src": "10.200.1.2",
     "dst": "10.200.128.7", "ident": 4242, "seq": 17, "dropped": false, "why": null,
     "hold_s": 0.050031, "plan_s": 0.05}

``t_ns`` is the kernel's arrival stamp of the request (wall clock, ns). ``hold_s`` is the time
the reply was really held: from that arrival to just before the reply's ``sendto``, on the
monotonic clock (the arrival stamp is moved onto it by the packet's age when read). A tool's
RTT for that request should exceed ``hold_s`` only by the two veth crossings and its own send
and receive path (tens of microseconds). ``plan_s`` is the hold the impairment asked for; the
two differ by the responder's own lateness. ``dropped`` requests have ``why`` = ``"loss"``,
``"outage"`` or ``"send failed: <reason>"`` and no hold; ``site`` is ``""`` for a request
from outside the sites (answered at once, unimpaired). A request the
responder never saw (lost on the way, or its socket overflowed: see the stats file's
``socket_drops``) has no line.

Lines are appended in the order outcomes are decided (drops at arrival, replies when sent)
and flushed every 50 ms, so read complete lines only (:func:`read_truth`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class TruthRecord:
    """What the responder did with one echo request (see the module docstring).

    Attributes:
        t_ns: the request's arrival, kernel stamp, wall clock in nanoseconds.
        site: the site the request came from (by source address); ``""`` if unknown.
        family: 4 or 6.
        src: the requester's address.
        dst: the address pinged.
        ident: the echo identifier.
        seq: the echo sequence number.
        dropped: whether the responder dropped it instead of replying.
        why: why it was dropped, ``None`` when answered.
        hold_s: seconds the reply was really held, ``None`` when dropped.
        plan_s: seconds the impairment asked to hold it, ``None`` when dropped.
    """

    t_ns: int
    site: str
    family: int
    src: str
    dst: str
    ident: int
    seq: int
    dropped: bool
    why: str | None
    hold_s: float | None
    plan_s: float | None


def truth_line(
    t_ns: int,
    site: str,
    family: int,
    src: str,
    dst: str,
    ident: int,
    seq: int,
    why: str | None,
    hold_s: float | None,
    plan_s: float | None,
) -> str:
    """Return one JSON line (with its newline) for a request; ``why`` set means dropped."""
    if why is not None:
        return (
            f'{{"t_ns":{t_ns},"site":"{site}","family":{family},"src":"{src}","dst":"{dst}",'
            f'"ident":{ident},"seq":{seq},"dropped":true,"why":{json.dumps(why)},'
            '"hold_s":null,"plan_s":null}\n'
        )
    return (
        f'{{"t_ns":{t_ns},"site":"{site}","family":{family},"src":"{src}","dst":"{dst}",'
        f'"ident":{ident},"seq":{seq},"dropped":false,"why":null,'
        f'"hold_s":{hold_s:.9f},"plan_s":{plan_s:.9f}}}\n'
    )


def parse_truth_line(line: str) -> TruthRecord:
    """Return the record of one truth line.

    Raises:
        ValueError: the line is not a truth record.
    """
    data = json.loads(line)
    try:
        return TruthRecord(
            t_ns=int(data["t_ns"]),
            site=str(data["site"]),
            family=int(data["family"]),
            src=str(data["src"]),
            dst=str(data["dst"]),
            ident=int(data["ident"]),
            seq=int(data["seq"]),
            dropped=bool(data["dropped"]),
            why=None if data["why"] is None else str(data["why"]),
            hold_s=None if data["hold_s"] is None else float(data["hold_s"]),
            plan_s=None if data["plan_s"] is None else float(data["plan_s"]),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a truth record: {line[:80]!r}") from exc


def read_truth(path: Path, offset: int = 0) -> tuple[list[TruthRecord], int]:
    """Return the complete records of ``path`` from byte ``offset`` on, and the next offset.

    A last line without its newline (being written) is left for the next call. A missing
    file reads as empty.
    """
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            data = fh.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    records = [parse_truth_line(line) for line in data[:end].decode().splitlines() if line]
    return records, offset + end


def by_destination(records: Iterable[TruthRecord]) -> dict[str, list[TruthRecord]]:
    """Group records by the address pinged, each list in arrival order (``t_ns``, then seq)."""
    groups: dict[str, list[TruthRecord]] = {}
    for record in records:
        groups.setdefault(record.dst, []).append(record)
    for group in groups.values():
        group.sort(key=lambda r: r.t_ns)
    return groups
