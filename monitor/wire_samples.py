"""Pack one result's RTT samples into a short string, exactly (compact encoding, version 3).

An ICMP round of 20 echo requests gives 20 RTT samples. Sent as JSON integers of
microseconds (version 2), they cost about 2.8 bytes each after gzip, three quarters of a
result. Here the samples of a result that are whole microseconds are sent as their distance
above the result's smallest sample (the *reference*, sent apart as an integer of
microseconds), in a variable-length bit code, as base64 text:

- the bytes are read most significant bit first; the first 5 bits are the code's order
  ``k`` (0-31), chosen per result by the encoder to make the string shortest;
- then, per sample in send order, ``c`` in the Exp-Golomb code of order ``k`` (J. Teuhola,
  "A compression method for clustered bit-vectors", Information Processing Letters 7(6),
  1978; order 0 is H.264's ``ue(v)``, ITU-T H.264 section 9.1): with ``w = (c >> k) + 1``,
  ``bit_length(w) - 1`` zero bits, then ``w`` in binary, then the ``k`` low bits of ``c``.
  ``c = 0`` is a lost request (``None``); ``c >= 1`` is ``reference + c - 1`` microseconds;
- then zero bits up to the byte boundary (at most 7). The empty string is no samples.

Samples noisy by about ``2**k`` microseconds take about ``k + 3`` bits each, about 1.9
bytes for the 20 ms of noise on a 4G link. A list with a sample that is not a whole number
of microseconds (or beyond 2**53 of them, or ``-0.0``) is not packed: the caller sends it as
version 2 does. The same module computes the *predictions* the compact encoding sends other
fields against (mean, jitter, smallest and largest sample): any rule works as long as encoder
and decoder compute it alike from the same samples, and these are what an ICMP round
reports, so the differences are mostly 0.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

MICRO = 1_000_000
"""Microseconds in a second."""

EXACT_LIMIT = 2**53
"""Integers of microseconds must be smaller than this in size (a float holds them exactly)."""

_ORDER_BITS = 5
_MAX_ORDER = (1 << _ORDER_BITS) - 1


class SamplesError(ValueError):
    """A packed sample string that cannot be decoded; the message is one sentence."""


def whole_us(value: float) -> int | None:
    """Return ``value`` (seconds) as integer microseconds when that is exact, else ``None``.

    Exact means ``n / 1e6`` gives back the very same float; ``-0.0`` (whose sign an integer
    cannot keep), non-finite values and sizes of 2**53 microseconds or more give ``None``.
    """
    product = value * MICRO
    if not math.isfinite(product):
        return None
    scaled = round(product)
    if abs(scaled) >= EXACT_LIMIT or scaled / MICRO != value:
        return None
    if value == 0 and math.copysign(1.0, value) < 0:
        return None
    return scaled


def us_to_seconds(us: int) -> float:
    """Return ``us`` microseconds as seconds (the float :func:`whole_us` came from).

    Raises:
        SamplesError: ``us`` is 2**53 or more in size.
    """
    if abs(us) >= EXACT_LIMIT:
        raise SamplesError(f"{us} microseconds is 2**53 or more in size")
    return us / MICRO


# -- packing ----------------------------------------------------------------------------


def _length(codes: Sequence[int], k: int) -> int:
    """Return the bits ``codes`` take in the Exp-Golomb code of order ``k``."""
    return 2 * sum(((c >> k) + 1).bit_length() for c in codes) + len(codes) * (k - 1)


def _best_order(codes: Sequence[int]) -> int:
    """Return an order k (0-31) that makes ``codes`` short: the best of a few near their median.

    The median, not the mean, so that one late reply does not make every other code long.
    The best of all 32 orders was within 3 below and 1 above ``bit_length(median) - 1`` for
    every round of ``bench/backfill.py`` and of the tests (``tests/storeforward``).
    """
    if not codes:
        return 0
    median = sorted(codes)[len(codes) // 2]
    guess = min(_MAX_ORDER, max(0, median.bit_length() - 1))
    candidates = range(max(0, guess - 3), min(_MAX_ORDER, guess + 2) + 1)
    return min(candidates, key=lambda k: _length(codes, k))


def samples_us(samples: Sequence[float | None]) -> list[int | None] | None:
    """Return RTT samples (seconds) as integer microseconds, ``None`` kept for lost ones.

    Returns ``None`` when a sample is not a whole number of microseconds (:func:`whole_us`).
    """
    out: list[int | None] = []
    for sample in samples:
        if sample is None:
            out.append(None)
            continue
        us = whole_us(sample)
        if us is None:
            return None
        out.append(us)
    return out


def pack(values: Sequence[int | None]) -> tuple[str, int | None]:
    """Return ``(packed text, reference)`` for a result's samples in integer microseconds.

    ``values`` come from :func:`samples_us` (each below 2**53 in size; ``None``: lost). The
    reference is the smallest value, ``None`` when every sample is lost; ``[]`` packs to
    ``("", None)``.
    """
    if not values:
        return "", None
    present = [v for v in values if v is not None]
    reference = min(present) if present else None
    base = reference if reference is not None else 0
    codes = [0 if v is None else v - base + 1 for v in values]
    k = _best_order(codes)
    acc, length = k, _ORDER_BITS
    low_mask = (1 << k) - 1
    for c in codes:
        w = (c >> k) + 1
        width = w.bit_length()
        acc = (((acc << (2 * width - 1)) | w) << k) | (c & low_mask)
        length += 2 * width - 1 + k
    pad = -length % 8
    raw = (acc << pad).to_bytes((length + pad) // 8, "big")
    return base64.b64encode(raw).decode("ascii"), reference


def unpack(text: str, reference: int | None, *, max_samples: int) -> list[int | None]:
    """Return the samples ``text`` (from :func:`pack`) stands for, in integer microseconds.

    Each value is below 2**53 in size; ``None`` is a lost request.

    Raises:
        SamplesError: ``text`` is not base64, a code is cut short or too large, the
            padding is longer than 7 bits or not zeros, a sample is present but
            ``reference`` is ``None``, a sample is 2**53 microseconds or more in size, or
            there are more than ``max_samples`` samples.
    """
    if not text:
        return []
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SamplesError("the packed samples are not base64 text") from None
    total = 8 * len(raw)
    bits = format(int.from_bytes(raw, "big"), f"0{total}b")
    k = int(bits[:_ORDER_BITS], 2)
    offset = 1 << k
    limit = 55 - k  # codes are below 2**54 (two values below 2**53 apart): w fits
    find = bits.find
    codes: list[int] = []
    pos = _ORDER_BITS
    while (one := find("1", pos)) >= 0:
        if len(codes) == max_samples:
            raise SamplesError(f"the packed samples hold more than {max_samples} samples")
        width = one - pos + 1
        end = one + width + k
        if width > limit:
            raise SamplesError(f"packed sample {len(codes)} is too large for its code")
        if end > total:
            raise SamplesError(f"packed sample {len(codes)} is cut short")
        codes.append(int(bits[one:end], 2) - offset)
        pos = end
    if total - pos > 7:
        raise SamplesError(
            f"the packed samples end in {total - pos} zero bits (at most 7 pad a byte)"
        )
    if reference is None:
        if any(codes):
            raise SamplesError("a packed sample is present, but rtts_ref_us is null")
        return [None] * len(codes)
    top = max(codes, default=0)
    if top and (abs(reference) >= EXACT_LIMIT or abs(reference + top - 1) >= EXACT_LIMIT):
        raise SamplesError("a packed sample is 2**53 microseconds or more in size")
    return [None if c == 0 else reference + c - 1 for c in codes]


# -- predictions ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Predictions:
    """What an ICMP round's summary fields are expected to be, in integer microseconds.

    From the samples, lost ones skipped, in send order: ``mean_us`` their mean,
    ``jitter_us`` the mean absolute difference of consecutive ones (as
    :func:`probes.icmp.stats.jitter`), ``min_us`` and ``max_us``; the means rounded half
    up, and 0 where there are too few samples (none; fewer than two for the jitter).
    """

    mean_us: int
    jitter_us: int
    min_us: int
    max_us: int


NO_PREDICTIONS = Predictions(0, 0, 0, 0)


def predict(values: Sequence[int | None]) -> Predictions:
    """Return the predictions from samples in integer microseconds (``None``: skipped)."""
    present = [v for v in values if v is not None]
    if not present:
        return NO_PREDICTIONS
    m = len(present)
    mean = (2 * sum(present) + m) // (2 * m)
    spread = sum(abs(b - a) for a, b in pairwise(present))
    jitter = (2 * spread + m - 1) // (2 * (m - 1)) if m > 1 else 0
    return Predictions(mean, jitter, min(present), max(present))


def predict_seconds(samples: Sequence[float | None]) -> Predictions:
    """Return the predictions from samples in seconds: those of whole microseconds count."""
    return predict([None if s is None else whole_us(s) for s in samples])
