"""decode_millis: decode's verdicts and values, with top-level instants as epoch milliseconds."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import DATETIME_MILLIS, MAGIC, Codec, encode, shared_codec
from schemas.errors import DecodeError
from streams.worker.instants import to_millis
from tests.unit.schemas.avro_strategies import RECORD_NAMES, detection, records

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(decode: Any, name: str, data: bytes) -> Any:
    """The decoded record, or the error's class and message."""
    try:
        return decode(name, data)
    except DecodeError as exc:
        return (type(exc), str(exc))


def plain_instants(name: str) -> set[str]:
    """The fields of ``name`` typed timestamp-millis outside a union."""
    fields = shared_codec().schemas.latest(name).raw["fields"]
    return {
        f["name"]
        for f in fields
        if isinstance(f["type"], dict) and f["type"].get("logicalType") == "timestamp-millis"
    }


def as_millis(name: str, record: Any) -> Any:
    """``record`` with its plain timestamp fields in epoch milliseconds."""
    instants = plain_instants(name)
    return {k: to_millis(v) if k in instants else v for k, v in record.items()}


@SETTINGS
@given(name=st.sampled_from(RECORD_NAMES), data=st.data())
def test_round_trip_gives_decode_values_with_instants_in_millis(
    name: str, data: st.DataObject
) -> None:
    codec = shared_codec()
    wire = encode(name, data.draw(records(name)))
    millis = codec.decode_millis(name, wire)
    assert millis == as_millis(name, codec.decode(name, wire))
    assert all(type(millis[field]) is int for field in plain_instants(name))


def test_detection_captured_at_comes_out_as_an_int() -> None:
    record = detection()
    decoded = shared_codec().decode_millis("DetectionEvent", encode("DetectionEvent", record))
    assert decoded["captured_at"] == to_millis(record["captured_at"])
    assert type(decoded["captured_at"]) is int


@SETTINGS
@given(name=st.sampled_from(RECORD_NAMES), body=st.binary(max_size=2048), data=st.data())
def test_random_bodies_get_the_same_verdict_and_error(
    name: str, body: bytes, data: st.DataObject
) -> None:
    codec = shared_codec()
    header = encode(name, data.draw(records(name)))[:10]
    full = outcome(codec.decode, name, header + body)
    millis = outcome(codec.decode_millis, name, header + body)
    assert millis == (full if isinstance(full, tuple) else as_millis(name, full))


def _zigzag(value: int) -> bytes:
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _detection_with_captured_at(millis: int) -> bytes:
    """A DetectionEvent whose captured_at long is written raw (beyond what a datetime holds)."""
    codec = shared_codec()

    def text(value: str) -> bytes:
        return _zigzag(len(value)) + value.encode()

    body = (text("e1") + text("c1") + text("S1") + _zigzag(millis) + struct.pack("<f", 0.9)
            + _zigzag(4) + b"\x00\x00\x00\x00" + text("demo"))  # fmt: skip
    return MAGIC + codec.fingerprint("DetectionEvent") + body


LOW, HIGH = DATETIME_MILLIS


@pytest.mark.parametrize(
    ("millis", "decodable"),
    [(LOW - 1, False), (LOW, True), (0, True), (HIGH, True), (HIGH + 1, False), (2**62, False)],
)
def test_instants_at_and_beyond_the_datetime_range(millis: int, decodable: bool) -> None:
    codec = Codec()
    data = _detection_with_captured_at(millis)
    full = outcome(codec.decode, "DetectionEvent", data)
    decoded = outcome(codec.decode_millis, "DetectionEvent", data)
    assert isinstance(full, dict) is decodable
    if decodable:
        assert decoded["captured_at"] == millis == to_millis(full["captured_at"])
    else:
        assert decoded == full  # decode's own error, class and message
