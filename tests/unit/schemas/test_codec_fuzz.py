"""Bad bytes only ever raise schemas.errors.DecodeError subclasses: fuzzed with Hypothesis.

Every test counts the inputs it ran into ``RUN_COUNTS`` and the last test asserts the
total, so ``pytest -s`` shows how much was fuzzed.
"""

from __future__ import annotations

import struct
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import DEFAULT_MAX_PAYLOAD_BYTES, MAGIC, Codec, decode, encode
from schemas.errors import (
    BadMagicError,
    DecodeError,
    OversizeError,
    TruncatedError,
    UndecodableError,
    UnknownFingerprintError,
    WrongRecordError,
)
from tests.unit.schemas.avro_strategies import RECORD_NAMES, detection, records

RUN_COUNTS: Counter[str] = Counter()
FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decode_or_typed_error(name: str, data: bytes) -> dict[str, Any] | None:
    try:
        return decode(name, data)
    except DecodeError:
        return None


@FUZZ
@given(name=st.sampled_from(RECORD_NAMES), data=st.binary(max_size=4096))
def test_random_bytes(name: str, data: bytes) -> None:
    RUN_COUNTS["random bytes"] += 1
    if data[:2] != MAGIC:
        with pytest.raises((BadMagicError, TruncatedError)):
            decode(name, data)
    else:
        _decode_or_typed_error(name, data)


@FUZZ
@given(name=st.sampled_from(RECORD_NAMES), body=st.binary(max_size=4096), data=st.data())
def test_random_body_behind_a_valid_header(name: str, body: bytes, data: st.DataObject) -> None:
    """Random bodies behind the right fingerprint reach fastavro: the hardest case."""
    RUN_COUNTS["random body, valid header"] += 1
    header = encode(name, data.draw(records(name)))[:10]
    _decode_or_typed_error(name, header + body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(RECORD_NAMES), data=st.data())
def test_every_truncation_of_a_valid_encoding(name: str, data: st.DataObject) -> None:
    encoded = encode(name, data.draw(records(name)))
    for cut in range(len(encoded)):
        RUN_COUNTS["truncations"] += 1
        with pytest.raises(DecodeError):
            decode(name, encoded[:cut])


@FUZZ
@given(name=st.sampled_from(RECORD_NAMES), data=st.data())
def test_bit_flips_and_trailing_bytes(name: str, data: st.DataObject) -> None:
    RUN_COUNTS["bit flips"] += 1
    encoded = bytearray(encode(name, data.draw(records(name))))
    position = data.draw(st.integers(10, len(encoded) - 1)) if len(encoded) > 10 else None
    if position is not None:
        encoded[position] ^= 1 << data.draw(st.integers(0, 7))
        _decode_or_typed_error(name, bytes(encoded))
    with pytest.raises(UndecodableError, match="trailing"):
        decode(name, encode(name, data.draw(records(name))) + b"\x00")


@FUZZ
@given(
    name=st.sampled_from(RECORD_NAMES),
    fingerprint=st.binary(min_size=8, max_size=8),
    data=st.data(),
)
def test_unknown_fingerprint(name: str, fingerprint: bytes, data: st.DataObject) -> None:
    RUN_COUNTS["unknown fingerprints"] += 1
    encoded = encode(name, data.draw(records(name)))
    try:
        decode(name, MAGIC + fingerprint + encoded[10:])
    except UnknownFingerprintError:
        return
    # the 1-in-2**64 case: the drawn fingerprint is the real one
    assert encoded[2:10] == fingerprint


def test_fingerprint_of_another_record_is_reported_as_such() -> None:
    with pytest.raises(WrongRecordError, match="DetectionEvent"):
        decode("Alert", encode("DetectionEvent", detection()))


@pytest.mark.parametrize("size", [DEFAULT_MAX_PAYLOAD_BYTES + 1, 10 * 1024 * 1024])
def test_oversize_payload_is_rejected_before_parsing(size: int) -> None:
    RUN_COUNTS["oversize"] += 1
    # a valid header and a plausible body: only the size is wrong
    payload = encode("DetectionEvent", detection()).ljust(size, b"\x00")
    with pytest.raises(OversizeError):
        decode("DetectionEvent", payload)


def test_oversize_limit_is_configurable() -> None:
    small = Codec(max_payload_bytes=100)
    with pytest.raises(OversizeError):
        small.decode("DetectionEvent", encode("DetectionEvent", detection()))


def _zigzag(value: int) -> bytes:
    value = (value << 1) ^ (value >> 63)
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


@pytest.mark.parametrize("length", [2**62, -1, 2**31])
def test_huge_or_negative_length_prefix_does_not_allocate(length: int) -> None:
    """A template length of 4 EiB must fail fast, not try to allocate it."""
    RUN_COUNTS["length bombs"] += 1
    header = encode("DetectionEvent", detection())[:10]
    body = b"".join(_zigzag(len(s)) + s for s in (b"e", b"c", b"s"))
    body += _zigzag(0) + struct.pack("<f", 0.5) + _zigzag(length) + b"\x00" * 16
    with pytest.raises(UndecodableError):
        decode("DetectionEvent", header + body)


def test_huge_array_block_count_does_not_allocate() -> None:
    RUN_COUNTS["length bombs"] += 1
    from tests.unit.schemas.avro_strategies import operation_window

    good = encode("OperationWindow", operation_window(camera_ids=["x"]))
    start = good.index(b"\x02\x02x\x00")  # block count 1, string "x", end of array
    bomb = good[:start] + _zigzag(2**62) + good[start + 1 :]
    with pytest.raises(UndecodableError):
        decode("OperationWindow", bomb)


def test_zz_report_how_many_inputs_ran() -> None:
    """Summary (printed with -s); fails if a fuzz test above was silently skipped."""
    total = sum(RUN_COUNTS.values())
    print(f"\ncodec fuzz inputs: {total} total, {dict(RUN_COUNTS)}")
    if len(RUN_COUNTS) >= 5:
        assert total > 1000
