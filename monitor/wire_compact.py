"""The compact (columnar) encoding of an upload batch: the same :class:`BatchIn`, fewer bytes.

``Content-Type: application/vnd.linkwatch.batch.v2+json`` (:data:`COMPACT_CONTENT_TYPE`),
normally with ``Content-Encoding: gzip``. One JSON object; ``v`` names the column layout,
3 (what :func:`encode_batch` writes) or 2 (agents before it; still read)::

    {"v": 3, "batch_id": ..., "site_id": ..., "agent_sent_at": ..., "spool": {...} | null,
     "n": <number of results>,
     "cols": {<one list of n values per result field>}}

Why it is smaller than one JSON object per result: field names appear once per batch;
strings that repeat (target ids, kinds, statuses, addresses, error sentences, the first
half of result ids) are sent once per batch in a dictionary and referred to by index;
measurement times are integer microseconds, each a delta from the previous result *of the
same target* (about the probe interval, so gzip finds the repeated digits); the second half
of a result id is an integer delta from the previous result's (the agent's ids count up:
:mod:`monitor.agent.ids`); numbers in seconds or ratios are integers of millionths when that
is exact, else the float itself. Version 3 adds what makes an ICMP round of 20 echo
requests cheap: its RTT samples packed into a short string (:mod:`monitor.wire_samples`),
and the round's mean, jitter, minimum and maximum sent as their difference from what the
samples predict (mostly 0). Nothing is rounded: decoding gives back the very values encoded
(nulls stay null, floats bit for bit, instants to the microsecond, in UTC).

Columns (``cols``), each of length ``n`` unless said otherwise:

- ``id_hi``, ``target_id``, ``kind``, ``status``, ``address``, ``error``: dictionary columns
  ``{"values": [distinct strings], "index": [position in values, or null for None]}``;
  ``id_hi`` holds the first 16 hex digits of the result id.
- ``id_lo``: the last 16 hex digits of the result id as an integer, minus the previous
  result's (the first: minus 0).
- ``measured_at_us``: microseconds since 1970-01-01 UTC, minus the previous result of the
  same target (the first of each target: absolute).
- ``duration_s``, ``rtt_s``, ``packet_loss``, ``jitter_s``, ``clock_offset_s``: numbers: an
  integer means millionths (``12345`` is 0.012345; its size below 2**53), a float is the
  value itself, null None. Version 3: an integer of ``rtt_s`` or ``jitter_s`` is
  microseconds *from the prediction* (below).
- ``sent``, ``received``, ``duplicates``, ``family``: integers or null.
- ``phases_s``: an object per result of numbers; ``detail``: the object itself (version 3:
  see ``detail_us``).
- Version 2: ``rtts_s``: a list per result of numbers (as above) or null.
- Version 3: ``rtts``: per result either a string, the samples packed as
  :mod:`monitor.wire_samples` says (whole microseconds or lost), or a list as in version 2
  (when a sample is not a whole number of microseconds); ``rtts_ref_us``: the packed
  samples' reference (the smallest, integer microseconds), null when none is present;
  ``detail_us``: per result the keys of ``detail`` whose value was a float of whole
  microseconds under a name ending in ``_s`` and is sent as an integer of microseconds from
  the prediction (``rtt_min_s``, ``rtt_max_s``) or from 0 (any other name).

Predictions (version 3, :func:`monitor.wire_samples.predict`), from the result's decoded
samples that are whole microseconds: ``rtt_s`` their mean, ``jitter_s`` the mean absolute
difference of consecutive ones, ``rtt_min_s`` / ``rtt_max_s`` the smallest / largest; 0 when
there are too few.

Errors: :func:`decode_batch` raises :class:`CompactBodyError` listing FastAPI-style errors
(``loc`` without the leading ``"body"``). A bad value of one result is reported at
``("results", i, field)``, exactly as for the JSON encoding, so the agent can set that
result aside (a bad ``rtts`` or ``rtts_ref_us`` at ``rtts_s``, a bad ``detail_us`` at
``detail``); a malformed column at ``("cols", column)``; an unknown version at ``("v",)``.
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
    TypeAdapter,
    ValidationError,
)

from monitor.wire import COMPACT_CONTENT_TYPE, MAX_BATCH_RESULTS, BatchIn, ResultIn, SpoolReport
from monitor.wire_samples import (
    EXACT_LIMIT,
    Predictions,
    SamplesError,
    pack,
    predict,
    predict_seconds,
    samples_us,
    unpack,
    us_to_seconds,
    whole_us,
)

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
_PREDICTED_FIELDS = ("rtt_s", "jitter_s")  # version 3: integers are from the prediction
_INT_FIELDS = ("sent", "received", "duplicates", "family")
_COMMON_LIST_COLUMNS = ("id_lo", "measured_at_us", *_NUM_FIELDS, *_INT_FIELDS, "phases_s", "detail")
_LIST_COLUMNS = {
    2: (*_COMMON_LIST_COLUMNS, "rtts_s"),
    3: (*_COMMON_LIST_COLUMNS, "rtts", "rtts_ref_us", "detail_us"),
}
_FIELD_OF_COLUMN = {
    "id_hi": "result_id",
    "id_lo": "result_id",
    "measured_at_us": "measured_at",
    "rtts": "rtts_s",
    "rtts_ref_us": "rtts_s",
    "detail_us": "detail",
}
_MAX_SAMPLES: int = next(  # as many as ResultIn allows
    m.max_length for m in ResultIn.model_fields["rtts_s"].metadata if hasattr(m, "max_length")
)
_VERSIONS = "2 or 3"


def _number(value: object) -> int | float | None:
    if value is None:
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) >= EXACT_LIMIT:
            raise ValueError("must be an integer of millionths below 2**53 in size")
        return value
    raise ValueError("must be a number (an integer of millionths, or a float) or null")


Num = Annotated[int | float | None, PlainValidator(_number)]
"""A number on the wire: an integer of millionths (below 2**53), a float as is, or null."""


def _samples_cell(value: object) -> str | list[int | float | None]:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return [_number(x) for x in value]
    raise ValueError("must be packed samples (a string) or a list of numbers")


SamplesCell = Annotated[str | list[int | float | None], PlainValidator(_samples_cell)]
"""Version 3 ``rtts``: packed samples (:mod:`monitor.wire_samples`) or a list of numbers."""


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


class _CommonColumns(_Strict):
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
    phases_s: list[dict[str, Num]]
    detail: list[dict[str, Any]]


class _ColumnsV2(_CommonColumns):
    rtts_s: list[list[Num]]


class _ColumnsV3(_CommonColumns):
    rtts: list[SamplesCell]
    rtts_ref_us: list[StrictInt | None]
    detail_us: list[list[str]]


class _Envelope(_Strict):
    batch_id: str
    site_id: str
    agent_sent_at: AwareDatetime
    spool: SpoolReport | None = None
    n: int = Field(ge=0, le=MAX_BATCH_RESULTS)


class _BatchV2(_Envelope):
    v: Literal[2]
    cols: _ColumnsV2


class _BatchV3(_Envelope):
    v: Literal[3]
    cols: _ColumnsV3


_BODY: TypeAdapter[_BatchV2 | _BatchV3] = TypeAdapter(
    Annotated[_BatchV2 | _BatchV3, Field(discriminator="v")]
)


# -- encoding ----------------------------------------------------------------------------


def encode_number(value: float | None) -> int | float | None:
    """Return ``value`` as sent: integer millionths when exact, else the float; None stays.

    Exact means ``n / 1e6`` gives back the very same float, with ``n`` below 2**53 in size
    (``-0.0`` keeps its sign by staying a float; so do values too large for an integer).
    """
    if value is None:
        return None
    us = whole_us(value)
    return float(value) if us is None else us


def decode_number(value: int | float | None) -> float | None:
    """Return the float a wire number stands for (see :func:`encode_number`)."""
    if value is None:
        return None
    if isinstance(value, int):
        return value / _MICRO
    return value


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


def _from_prediction(value: float | None, predicted_us: int) -> int | float | None:
    """Return ``value`` as sent against a prediction: integer µs from it, or as is."""
    sent = encode_number(value)
    if isinstance(sent, int) and abs(sent - predicted_us) < EXACT_LIMIT:
        return sent - predicted_us
    return None if value is None else float(value)


def _detail_base_us(key: str, predicted: Predictions) -> int:
    if key == "rtt_min_s":
        return predicted.min_us
    if key == "rtt_max_s":
        return predicted.max_us
    return 0


def _detail_out(detail: dict[str, Any], predicted: Predictions) -> tuple[dict[str, Any], list[str]]:
    """Return a result's ``detail`` as sent in version 3, and the keys sent in microseconds."""
    out: dict[str, Any] = {}
    listed: list[str] = []
    for key, value in detail.items():
        if key.endswith("_s") and isinstance(value, float):
            us = whole_us(value)
            base = _detail_base_us(key, predicted)
            if us is not None and abs(us - base) < EXACT_LIMIT:
                out[key] = us - base
                listed.append(key)
                continue
        out[key] = value
    return out, listed


def encode_batch(batch: BatchIn, *, version: Literal[2, 3] = 3) -> bytes:
    """Return ``batch`` in the compact encoding, as UTF-8 JSON bytes (not compressed).

    ``version`` 3 is what agents send; 2 is what agents before it sent (kept to test that
    the server still reads it, and to compare sizes).
    """
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
    if version == 2:
        cols["rtts_s"] = [[encode_number(x) for x in r.rtts_s] for r in results]
    cols["phases_s"] = [{k: encode_number(v) for k, v in r.phases_s.items()} for r in results]
    if version == 2:
        cols["detail"] = [r.detail for r in results]
    else:
        _encode_v3_columns(results, cols)
    document = {
        "v": version,
        "batch_id": batch.batch_id,
        "site_id": batch.site_id,
        "agent_sent_at": batch.agent_sent_at.isoformat(),
        "spool": None if batch.spool is None else batch.spool.model_dump(mode="json"),
        "n": len(results),
        "cols": cols,
    }
    return json.dumps(document, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _encode_v3_columns(results: Sequence[ResultIn], cols: dict[str, Any]) -> None:
    """Set the columns version 3 adds or sends differently (see the module docstring)."""
    rtts: list[str | list[int | float | None]] = []
    refs: list[int | None] = []
    details: list[dict[str, Any]] = []
    listed: list[list[str]] = []
    for i, r in enumerate(results):
        values = samples_us(r.rtts_s)
        if values is None:  # a sample not of whole microseconds: as version 2 sends it
            rtts.append([encode_number(x) for x in r.rtts_s])
            refs.append(None)
            predicted = predict_seconds(r.rtts_s)
        else:
            text, reference = pack(values)
            rtts.append(text)
            refs.append(reference)
            predicted = predict(values)
        cols["rtt_s"][i] = _from_prediction(r.rtt_s, predicted.mean_us)
        cols["jitter_s"][i] = _from_prediction(r.jitter_s, predicted.jitter_us)
        detail, keys = _detail_out(r.detail, predicted)
        details.append(detail)
        listed.append(keys)
    cols["rtts"] = rtts
    cols["rtts_ref_us"] = refs
    cols["detail"] = details
    cols["detail_us"] = listed


# -- decoding ----------------------------------------------------------------------------


def decode_batch(raw: bytes) -> BatchIn:
    """Decode a compact body (version 2 or 3) into the :class:`BatchIn` it encodes.

    Raises:
        CompactBodyError: the body is not JSON, its version is unknown, a column is
            missing, malformed or of the wrong length, an index points outside its
            dictionary, packed samples do not decode, or a decoded result is not a valid
            :class:`ResultIn` (reported at ``("results", i, field)``).
    """
    try:
        envelope = _BODY.validate_json(raw)
    except ValidationError as exc:
        raise CompactBodyError([_column_error(e) for e in exc.errors(include_url=False)]) from None
    n = envelope.n
    cols = envelope.cols
    problems: list[dict[str, Any]] = []
    for name in ("id_hi", *_DICT_FIELDS):
        column: _DictColumn = getattr(cols, name)
        problems += _length_problem(name, len(column.index), n)
    for name in _LIST_COLUMNS[envelope.v]:
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
            "phases_s": {k: decode_number(v) for k, v in cols.phases_s[i].items()},
        }
        for name in _NUM_FIELDS:
            result[name] = decode_number(getattr(cols, name)[i])
        for name in _INT_FIELDS:
            result[name] = getattr(cols, name)[i]
        if isinstance(cols, _ColumnsV2):
            result["rtts_s"] = [decode_number(x) for x in cols.rtts_s[i]]
            result["detail"] = cols.detail[i]
        else:
            _decode_v3_fields(cols, i, result, problems)
        results.append(result)
    if problems:
        raise CompactBodyError(problems)
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


def _decode_v3_fields(
    cols: _ColumnsV3, i: int, result: dict[str, Any], problems: list[dict[str, Any]]
) -> None:
    """Set result ``i``'s ``rtts_s``, ``rtt_s``, ``jitter_s`` and ``detail`` (version 3).

    A value that does not decode is appended to ``problems`` (at the result's field).
    """
    cell = cols.rtts[i]
    if isinstance(cell, str):
        try:
            values = unpack(cell, cols.rtts_ref_us[i], max_samples=_MAX_SAMPLES)
        except SamplesError as exc:
            problems.append(_error(("results", i, "rtts_s"), str(exc), "samples"))
            values = []
        result["rtts_s"] = [None if v is None else v / _MICRO for v in values]
        predicted = predict(values)
    else:
        result["rtts_s"] = samples = [decode_number(x) for x in cell]
        predicted = predict_seconds(samples)
    bases = {"rtt_s": predicted.mean_us, "jitter_s": predicted.jitter_us}
    for name in _PREDICTED_FIELDS:
        value = getattr(cols, name)[i]
        if isinstance(value, int):
            try:
                result[name] = us_to_seconds(bases[name] + value)
            except SamplesError as exc:
                problems.append(_error(("results", i, name), str(exc), "range"))
    detail = dict(cols.detail[i])
    for position, key in enumerate(cols.detail_us[i]):
        value = detail.get(key)
        if key in cols.detail_us[i][:position]:
            why = f"cols.detail_us names {key!r} twice"
        elif not isinstance(value, int) or isinstance(value, bool):
            why = f"cols.detail_us names {key!r}, whose value is not an integer"
        else:
            try:
                detail[key] = us_to_seconds(_detail_base_us(key, predicted) + value)
                continue
            except SamplesError as exc:
                why = f"{key}: {exc}"
        problems.append(_error(("results", i, "detail", key), why, "detail_us"))
    result["detail"] = detail


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
    """Return a pydantic error on the compact envelope, moved to the result it concerns.

    The envelope is a union told apart by ``v``, so pydantic puts the version first in
    ``loc``; it is dropped. An unknown or missing version is reported at ``("v",)``.
    """
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        return _error(("v",), f"must be {_VERSIONS}, the compact layouts this server reads", "v")
    loc = tuple(error["loc"])
    if loc and loc[0] in (2, 3):
        loc = loc[1:]
    if len(loc) >= 3 and loc[0] == "cols" and isinstance(loc[2], int) and loc[1] != "id_hi":
        field = _FIELD_OF_COLUMN.get(str(loc[1]), loc[1])
        loc = ("results", loc[2], field, *loc[3:])
    elif len(loc) >= 4 and loc[0] == "cols" and loc[2] == "index" and isinstance(loc[3], int):
        field = _FIELD_OF_COLUMN.get(str(loc[1]), loc[1])
        loc = ("results", loc[3], field, *loc[4:])
    return {"loc": loc, "msg": error["msg"], "type": error["type"]}
