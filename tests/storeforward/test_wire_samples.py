"""Packed RTT samples (compact encoding v3): the bit layout, exactness, strict decoding."""

from __future__ import annotations

import base64
import math
import random
import struct

import pytest

from monitor.wire_samples import (
    EXACT_LIMIT,
    Predictions,
    SamplesError,
    _best_order,
    _length,
    pack,
    predict,
    predict_seconds,
    samples_us,
    unpack,
    whole_us,
)


def test_the_layout_is_the_documented_one() -> None:
    # [5, 7, lost] µs: reference 5, codes 1, 3, 0. Order 1 is shortest (8 bits against 9):
    # 00001 (k) | 1 1 (c=1) | 01 0 1 (c=3) | 1 0 (c=0) | 000 (pad) = 0x0E 0xB0
    assert pack([5, 7, None]) == (base64.b64encode(b"\x0e\xb0").decode(), 5)
    assert pack([None, None]) == ("Bg==", None)  # k = 0, two 1-bit codes: 00000110
    assert pack([]) == ("", None)
    assert unpack("DrA=", 5, max_samples=10) == [5, 7, None]
    assert unpack("DrA=", 1000, max_samples=10) == [1000, 1002, None]  # relative to it


def random_float(rng: random.Random) -> float | None:
    pick = rng.random()
    if pick < 0.1:
        return None
    if pick < 0.2:
        value: float = struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0]
        return value if math.isfinite(value) else None
    if pick < 0.3:
        return rng.choice([0.0, -0.0, 1e-6, -1e-6, 5e-324, 1e305, 0.1 + 0.2, 9007199254.74099])
    return round(rng.uniform(-1, 1) * 10.0 ** rng.randrange(0, 9), 6)


def test_every_list_of_whole_microseconds_comes_back_bit_for_bit() -> None:
    rng = random.Random(11)
    packed = 0
    for _ in range(5000):
        samples = [random_float(rng) for _ in range(rng.randrange(0, 25))]
        values = samples_us(samples)
        if values is None:
            assert any(s is not None and whole_us(s) is None for s in samples)
            continue
        packed += 1
        text, reference = pack(values)
        back = unpack(text, reference, max_samples=1000)
        assert back == values
        seconds = [None if v is None else v / 1_000_000 for v in back]
        assert [None if s is None else s.hex() for s in seconds] == [
            None if s is None else s.hex() for s in samples
        ]
    assert packed > 1000  # the test went through the packing often


def test_only_values_that_come_back_exactly_are_whole_microseconds() -> None:
    assert whole_us(0.012345) == 12345
    assert whole_us(0.0) == 0
    assert whole_us(-2.5) == -2_500_000
    assert whole_us(-0.0) is None  # an integer has no sign for zero
    assert whole_us(0.1 + 0.2) is None
    assert whole_us(1e-9) is None
    assert whole_us(1e305) is None  # times a million is infinite
    assert whole_us(math.inf) is None and whole_us(math.nan) is None
    assert whole_us(9007199254.74099) == EXACT_LIMIT - 2
    assert whole_us(EXACT_LIMIT / 1_000_000) is None


@pytest.mark.parametrize("noise_us", [300, 1000, 8000, 30_000, 250_000])
def test_the_order_chosen_is_the_best_of_all_32_for_link_like_rounds(noise_us: int) -> None:
    rng = random.Random(noise_us)
    for _ in range(300):
        values = [
            None if rng.random() < 0.05 else 600_000 + int(rng.expovariate(1 / noise_us))
            for _ in range(20)
        ]
        present = [v for v in values if v is not None]
        base = min(present) if present else 0
        codes = [0 if v is None else v - base + 1 for v in values]
        best = min(_length(codes, k) for k in range(32))
        assert _length(codes, _best_order(codes)) == best


def test_an_outlier_costs_bits_in_proportion_to_its_logarithm() -> None:
    calm = [10_000 + i for i in range(20)]
    spiked = [*calm[:-1], 10_000 + 2_000_000]  # one reply 2 s late
    calm_bytes = len(base64.b64decode(pack(calm)[0]))
    spiked_bytes = len(base64.b64decode(pack(spiked)[0]))
    assert spiked_bytes <= calm_bytes + 8


@pytest.mark.parametrize(
    ("text", "reference", "words"),
    [
        ("%%%%", 0, "not base64"),
        ("AAE", 0, "not base64"),  # padding missing
        ("AAE=", 0, "packed sample 0 is cut short"),
        ("BAA=", 0, "end in 10 zero bits"),
        ("BA==", None, None),  # one lost request: no reference needed
        ("BQA=", None, "rtts_ref_us is null"),  # k = 0, codes 0 then 1: a sample
        ("BQA=", EXACT_LIMIT, "2**53"),
        ("BQA=", -EXACT_LIMIT, "2**53"),
        (base64.b64encode(b"\x00" * 8 + b"\x01" + b"\xff" * 8).decode(), 0, "too large"),
    ],
)
def test_a_malformed_packed_string_is_refused_with_one_sentence(
    text: str, reference: int | None, words: str | None
) -> None:
    if words is None:
        assert unpack(text, reference, max_samples=10) == [None]
        return
    with pytest.raises(SamplesError) as caught:
        unpack(text, reference, max_samples=10)
    assert words in str(caught.value)


def test_more_samples_than_allowed_are_refused_before_they_are_all_decoded() -> None:
    text, reference = pack([None] * 11)
    assert unpack(text, reference, max_samples=11) == [None] * 11
    with pytest.raises(SamplesError, match="more than 10 samples"):
        unpack(text, reference, max_samples=10)


def test_predictions_are_the_round_summary_in_microseconds() -> None:
    assert predict([12100, 13500, None, 12800]) == Predictions(
        mean_us=12800, jitter_us=1050, min_us=12100, max_us=13500
    )
    assert predict([1, 2]) == Predictions(2, 1, 1, 2)  # 1.5 rounds half up
    assert predict([7]) == Predictions(7, 0, 7, 7)  # one sample: no jitter
    assert predict([None, None]) == Predictions(0, 0, 0, 0)
    assert predict([]) == Predictions(0, 0, 0, 0)
    # in seconds, samples that are not whole microseconds do not count
    assert predict_seconds([0.0121, 1 / 3, None, 0.0128]) == Predictions(12450, 700, 12100, 12800)
