"""The compact (columnar) encoding of an upload batch: the same :class:`BatchIn`, fewer bytes.

``Content-Type: application/vnd.linkwatch.batch.v2+json`` (:data:`COMPACT_CONTENT_TYPE`),
normally with ``Content-Encoding: gzip``. One JSON object::

    {"v": 2, "batch_id": ..., "site_id": ..., "agent_sent_at": ..., "spool": {...} | null,
     "n": <number of results>,
     "cols": {<one list of n values per result field>}}

Why it is smaller than one JSON object per result: field names appear once per batch;
strings that repeat (target ids, kinds, statuses, addresses, error sentences, the first
half of result ids) are sent once per batch in a dictionary and referred to by index;
measurement times are integer microseconds, each a delta from the previous result *of the
same target* (about the probe interval, so gzip finds the repeated digits); the second half
of a result id is an integer delta from the previous result's (the agent's ids count up:
:mod:`monitor.agent.ids`); numbers in seconds or ratios are integers of millionths when that
is exact, else the float itself. Nothing is rounded: decoding gives back the very values
encoded (nulls stay null, floats bit for bit, instants to the microsecond, in UTC).

Columns (``cols``), each of length ``n`` unless said otherwise:

- ``id_hi``, ``target_id``, ``kind``, ``status``, ``address``, ``error``: dictionary columns
  ``{"values": [distinct strings], "index": [position in values, or null for None]}``;
  ``id_hi`` holds the first 16 hex digits of the result id.
- ``id_lo``: the last 16 hex digits of the result id as an integer, minus the previous
  result's (the first: minus 0).
- ``measured_at_us``: microseconds since 1970-01-01 UTC, minus the previous result of the
  same target (the first of each target: absolute).
- ``duration_s``, ``rtt_s``, ``packet_loss``, ``jitter_s``, ``clock_offset_s``: numbers: an
  integer means millionths (``12345`` is 0.012345), a float is the value itself, null None.
- ``sent``, ``received``, ``duplicates``, ``family``: integers or null.
- ``rtts_s``: a list per result of numbers (as above) or null; ``phases_s``: an object per
  result of numbers; ``detail``: the object itself.

Errors: :func:`decode_batch` raises :class:`CompactBodyError` listing FastAPI-style errors
(``loc`` without the leading ``"body"``). A bad value of one result is reported at
``("results", i, field)``, exactly as for the JSON encoding, so the agent can set that
result aside; a malformed column at ``("cols", column)``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictInt,
    ValidationError,
)

from monitor.wire import COMPACT_CONTENT_TYPE, MAX_BATCH_RESULTS, BatchIn, SpoolReport

__all__ = [
    "COMPACT_CONTENT_TYPE",
    "CompactBodyError",
    "decode_batch",
    "decode_number",
    "encode_batch",
    "encode_number",
    "from_us",
    "to_us",
]

_MICRO = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HEX16 = re.compile(r"^[0-9a-f]{16}$")
_LO_LIMIT = 1 << 64
_DICT_FIELDS = ("target_id", "kind", "status", "address", "error")
_NUM_FIELDS = ("duration_s", "rtt_s", "packet_loss", "jitter_s", "clock_offset_s")
_INT_FIELDS = ("sent", "received", "duplicates", "family")
_LIST_COLUMNS = (
    "id_lo",
    "measured_at_us",
    *_NUM_FIELDS,
    *_INT_FIELDS,
    "rtts_s",
    "phases_s",
    "detail",
)


def _number(value: object) -> int | float | None:
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value
    raise ValueError("must be a number (an integer of millionths, or a float) or null")


Num = Annotated[int | float | None, PlainValidator(_number)]
"""A number on the wire: an integer of millionths, a float as is, or null."""


class CompactBodyError(ValueError):
    """A compact body that cannot be decoded; ``errors`` lists ``{loc, msg, type}``."""

    def __init__(self, errors: Sequence[dict[str, Any]]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(str(e["msg"]) for e in self.errors))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class _DictColumn(_Strict):
    values: list[str | None]
    index: list[StrictInt | None]


class _Columns(_Strict):
    id_hi: _DictColumn
    id_lo: list[StrictInt]
    target_id: _DictColumn
    kind: _DictColumn
    status: _DictColumn
    address: _DictColumn
    error: _DictColumn
    measured_at_us: list[StrictInt]
    duration_s: list[Num]
    rtt_s: list[Num]
    packet_loss: list[Num]
    jitter_s: list[Num]
    clock_offset_s: list[Num]
    sent: list[StrictInt | None]
    received: list[StrictInt | None]
    duplicates: list[StrictInt | None]
    family: list[StrictInt | None]
    rtts_s: list[list[Num]]
    phases_s: list[dict[str, Num]]
    detail: list[dict[str, Any]]


class _CompactBatch(_Strict):
    v: Literal[2]
    batch_id: str
    site_id: str
    agent_sent_at: AwareDatetime
    spool: SpoolReport | None = None
    n: int = Field(ge=0, le=MAX_BATCH_RESULTS)
    cols: _Columns


# -- encoding ----------------------------------------------------------------------------


def encode_number(value: float | None) -> int | float | None:
    """Return ``value`` as sent: integer millionths when exact, else the float; None stays.

    Exact means ``n / 1e6`` gives back the very same float (and ``-0.0`` keeps its sign by
    staying a float).
    """
    if value is None:
        return None
    scaled = round(value * _MICRO)
    if abs(scaled) < 2**53 and scaled / _MICRO == value and not (value == 0 and _negative(value)):
        return scaled
    return float(value)


def decode_number(value: int | float | None) -> float | None:
    """Return the float a wire number stands for (see :func:`encode_number`)."""
    if value is None:
        return None
    if isinstance(value, int):
        return value / _MICRO
    return value


def _negative(value: float) -> bool:
    return math.copysign(1.0, value) < 0


def to_us(moment: datetime) -> int:
    """Return an aware datetime as integer microseconds since the Unix epoch (exact)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * _MICRO + delta.microseconds


def from_us(us: int) -> datetime:
    """Return the aware UTC datetime ``us`` microseconds after the Unix epoch."""
    return _EPOCH + timedelta(microseconds=us)


def _dictionary(values: Iterable[str | None]) -> dict[str, list[Any]]:
    positions: dict[str, int] = {}
    index: list[int | None] = []
    for value in values:
        if value is None:
            index.append(None)
            continue
        position = positions.setdefault(value, len(positions))
        index.append(position)
    return {"values": list(positions), "index": index}


def encode_batch(batch: BatchIn) -> bytes:
    """Return ``batch`` in the compact encoding, as UTF-8 JSON bytes (not compressed)."""
    results = batch.results
    ids = [r.result_id.replace("-", "") for r in results]
    lows = [int(i[16:], 16) for i in ids]
    last_us: dict[str, int] = {}
    times: list[int] = []
    for r in results:
        us = to_us(r.measured_at)
        times.append(us - last_us.get(r.target_id, 0))
        last_us[r.target_id] = us
    cols: dict[str, Any] = {
        "id_hi": _dictionary(i[:16] for i in ids),
        "id_lo": [low - prev for prev, low in zip([0, *lows], lows, strict=False)],
        "target_id": _dictionary(r.target_id for r in results),
        "kind": _dictionary(r.kind.value for r in results),
        "status": _dictionary(r.status.value for r in results),
        "address": _dictionary(r.address for r in results),
        "error": _dictionary(r.error for r in results),
        "measured_at_us": times,
    }
    for name in _NUM_FIELDS:
        cols[name] = [encode_number(getattr(r, name)) for r in results]
    for name in _INT_FIELDS:
        cols[name] = [getattr(r, name) for r in results]
    cols["rtts_s"] = [[encode_number(x) for x in r.rtts_s] for r in results]
    cols["phases_s"] = [{k: encode_number(v) for k, v in r.phases_s.items()} for r in results]
    cols["detail"] = [r.detail for r in results]
    document = {
        "v": 2,
        "batch_id": batch.batch_id,
        "site_id": batch.site_id,
        "agent_sent_at": batch.agent_sent_at.isoformat(),
        "spool": None if batch.spool is None else batch.spool.model_dump(mode="json"),
        "n": len(results),
        "cols": cols,
    }
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode("utf-8")


# -- decoding ----------------------------------------------------------------------------


def decode_batch(raw: bytes) -> BatchIn:
    """Decode a compact body into the :class:`BatchIn` it encodes.

    Raises:
        CompactBodyError: the body is not JSON, a column is missing, malformed or of the
            wrong length, an index points outside its dictionary, or a decoded result is
            not a valid :class:`ResultIn` (reported at ``("results", i, field)``).
    """
    try:
        envelope = _CompactBatch.model_validate_json(raw)
    except ValidationError as exc:
        raise CompactBodyError([_column_error(e) for e in exc.errors(include_url=False)]) from None
    n = envelope.n
    cols = envelope.cols
    problems: list[dict[str, Any]] = []
    for name in ("id_hi", *_DICT_FIELDS):
        column: _DictColumn = getattr(cols, name)
        problems += _length_problem(name, len(column.index), n)
    for name in _LIST_COLUMNS:
        problems += _length_problem(name, len(getattr(cols, name)), n)
    problems += [
        _error(("cols", "id_hi", "values", i), "must be 16 lowercase hex digits", "id_hi")
        for i, value in enumerate(cols.id_hi.values)
        if value is None or not _HEX16.match(value)
    ]
    if problems:
        raise CompactBodyError(problems)

    strings = {name: _undictionary(name, getattr(cols, name), problems) for name in _DICT_FIELDS}
    id_his = _undictionary("id_hi", cols.id_hi, problems)
    result_ids = _result_ids(id_his, cols.id_lo, problems)
    if problems:
        raise CompactBodyError(problems)

    last_us: dict[str, int] = {}
    results: list[dict[str, Any]] = []
    for i in range(n):
        target_id = strings["target_id"][i]
        key = target_id if target_id is not None else ""
        us = last_us.get(key, 0) + cols.measured_at_us[i]
        last_us[key] = us
        result: dict[str, Any] = {
            "result_id": result_ids[i],
            "target_id": target_id,
            "kind": strings["kind"][i],
            "status": strings["status"][i],
            "measured_at": _instant(us),
            "address": strings["address"][i],
            "error": strings["error"][i],
            "rtts_s": [decode_number(x) for x in cols.rtts_s[i]],
            "phases_s": {k: decode_number(v) for k, v in cols.phases_s[i].items()},
            "detail": cols.detail[i],
        }
        for name in _NUM_FIELDS:
            result[name] = decode_number(getattr(cols, name)[i])
        for name in _INT_FIELDS:
            result[name] = getattr(cols, name)[i]
        results.append(result)
    document = {
        "batch_id": envelope.batch_id,
        "site_id": envelope.site_id,
        "agent_sent_at": envelope.agent_sent_at.isoformat(),
        "spool": None if envelope.spool is None else envelope.spool.model_dump(mode="json"),
        "results": results,
    }
    try:  # through JSON text: pydantic validates that twice as fast as Python objects
        return BatchIn.model_validate_json(json.dumps(document, separators=(",", ":")))
    except ValidationError as exc:
        raise CompactBodyError(
            [
                {"loc": tuple(e["loc"]), "msg": e["msg"], "type": e["type"]}
                for e in exc.errors(include_url=False)
            ]
        ) from None


def _instant(us: int) -> str:
    try:
        return from_us(us).isoformat()
    except OverflowError:
        return "out of range"  # ResultIn then names measured_at as not a valid datetime


def _error(loc: tuple[str | int, ...], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": loc, "msg": msg, "type": f"compact_{kind}"}


def _length_problem(name: str, length: int, n: int) -> list[dict[str, Any]]:
    if length == n:
        return []
    return [
        _error(
            ("cols", name),
            f"has {length} value{'s' if length != 1 else ''} for {n} result{'s' if n != 1 else ''}",
            "length",
        )
    ]


def _undictionary(name: str, column: _DictColumn, problems: list[dict[str, Any]]) -> list[Any]:
    field = "result_id" if name == "id_hi" else name
    out: list[Any] = []
    for i, position in enumerate(column.index):
        if position is None:
            out.append(None)
        elif 0 <= position < len(column.values):
            out.append(column.values[position])
        else:
            problems.append(
                _error(
                    ("results", i, field),
                    f"index {position} is outside cols.{name}.values "
                    f"({len(column.values)} value{'s' if len(column.values) != 1 else ''})",
                    "index",
                )
            )
            out.append(None)
    return out


def _result_ids(
    highs: Sequence[str | None], deltas: Sequence[int], problems: list[dict[str, Any]]
) -> list[str | None]:
    out: list[str | None] = []
    low = 0
    for i, (high, delta) in enumerate(zip(highs, deltas, strict=True)):
        low += delta
        if high is None or not 0 <= low < _LO_LIMIT:
            problems.append(
                _error(("results", i, "result_id"), "does not decode to a result id", "id")
            )
            out.append(None)
            continue
        text = f"{high}{low:016x}"
        out.append(f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}")
    return out


def _column_error(error: Any) -> dict[str, Any]:
    """Return a pydantic error on the compact envelope, moved to the result it concerns."""
    loc = tuple(error["loc"])
    if len(loc) >= 3 and loc[0] == "cols" and isinstance(loc[2], int) and loc[1] != "id_hi":
        field = "measured_at" if loc[1] == "measured_at_us" else loc[1]
        field = "result_id" if field == "id_lo" else field
        loc = ("results", loc[2], field, *loc[3:])
    elif len(loc) >= 4 and loc[0] == "cols" and loc[2] == "index" and isinstance(loc[3], int):
        field = "result_id" if loc[1] == "id_hi" else loc[1]
        loc = ("results", loc[3], field, *loc[4:])
    return {"loc": loc, "msg": error["msg"], "type": error["type"]}
