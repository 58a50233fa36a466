"""Dead letters keep coordinates and reasons, never biometrics; templates round-trip."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from common.settings import Settings
from schemas.codec import decode, encode
from schemas.deadletter import dead_letter, reason_for, scrub_message
from schemas.errors import (
    BadMagicError,
    OversizeError,
    TemplateError,
    TruncatedError,
    UnknownFingerprintError,
    ValidationError,
)
from schemas.templates import template_from_bytes, template_to_bytes
from streams.topics import biometric_topic_names
from tests.unit.schemas.avro_strategies import detection

TEMPLATE = detection()["template"]


def _letter(
    topic: str,
    payload: bytes | None,
    error: BaseException | None = None,
    key: bytes | None = b"croydon",
) -> dict:
    return dead_letter(
        topic=topic,
        partition=3,
        offset=42,
        key=key,
        payload=payload,
        error=error or ValueError("x"),
        stage="worker.detections",
        biometric=biometric_topic_names(Settings()),
    )


@pytest.mark.parametrize("topic", ["lfr.detections", "lfr.watchlist"])
def test_biometric_payload_is_never_kept(topic: str) -> None:
    payload = encode("DetectionEvent", detection())
    letter = _letter(topic, payload)
    assert letter["payload"] is None
    assert letter["payload_sha256"] == hashlib.sha256(payload).hexdigest()
    assert letter["payload_size"] == len(payload)
    assert TEMPLATE not in encode("DeadLetter", letter)


def test_other_topics_keep_the_payload_and_round_trip() -> None:
    letter = _letter("lfr.operations", b"\x01\x02", key=b"\xffsite")
    assert letter["payload"] == b"\x01\x02"
    assert letter["key"] == "\ufffdsite"
    assert (letter["source_topic"], letter["source_partition"], letter["source_offset"]) == (
        "lfr.operations",
        3,
        42,
    )
    assert decode("DeadLetter", encode("DeadLetter", letter)) == letter


def test_configured_topic_names_are_biometric() -> None:
    settings = Settings(topic_detections="site-a.detections", topic_watchlist="site-a.wl")
    letter = dead_letter(
        topic="site-a.detections",
        partition=0,
        offset=0,
        key=None,
        payload=b"abc",
        error=ValueError(),
        stage="s",
        biometric=biometric_topic_names(settings),
    )
    assert letter["payload"] is None and letter["key"] is None


def test_watchlist_keys_lose_the_subject_id() -> None:
    letter = _letter("lfr.watchlist", None, key=b"wl-7:subject-secret")
    assert letter["key"] == "wl-7:<redacted>"
    assert letter["payload_size"] == 0


@pytest.mark.parametrize(
    "error, reason",
    [
        (OversizeError("big"), "oversize"),
        (UnknownFingerprintError("fp"), "unknown_fingerprint"),
        (BadMagicError("m"), "undecodable"),
        (TruncatedError("t"), "undecodable"),
        (ValidationError("v"), "invalid"),
        (TemplateError("t"), "invalid"),
        (KeyError("k"), "other"),
    ],
)
def test_reason_comes_from_the_exception_type(error: BaseException, reason: str) -> None:
    assert reason_for(error) == reason
    assert _letter("lfr.detections", b"", error)["error_class"] == type(error).__name__


def test_foreign_errors_can_name_a_reason() -> None:
    class UnknownSite(Exception):
        reason = "unknown_site"

    assert reason_for(UnknownSite()) == "unknown_site"


def test_messages_are_scrubbed_of_bytes() -> None:
    escaped = "\\x01" * 8
    message = f"failed on {TEMPLATE!r} and {TEMPLATE.hex()} and {escaped}"
    scrubbed = scrub_message(message)
    assert "\\x" not in scrubbed and TEMPLATE.hex()[:64] not in scrubbed
    letter = _letter("lfr.detections", TEMPLATE, ValueError(message))
    assert TEMPLATE.hex()[:64] not in letter["message"]


def test_failed_at_defaults_to_an_aware_wall_clock() -> None:
    assert _letter("lfr.scans", None)["failed_at"].tzinfo is not None
    fixed = datetime(2025, 1, 1, tzinfo=UTC)
    letter = dead_letter(
        topic="t",
        partition=0,
        offset=0,
        key=None,
        payload=None,
        error=ValueError(),
        stage="s",
        biometric=(),
        failed_at=fixed,
    )
    assert letter["failed_at"] == fixed


@settings(max_examples=200, deadline=None)
@given(arrays(np.float32, st.integers(1, 1024), elements=st.floats(-1, 1, width=32)))
def test_template_round_trip_within_float16_precision(vector: np.ndarray) -> None:
    data = template_to_bytes(vector)
    assert len(data) == 2 * vector.size
    back = template_from_bytes(data)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, vector, atol=1e-3, rtol=1e-3)


def test_template_bytes_are_little_endian_float16() -> None:
    assert template_to_bytes(np.array([1.0, -2.0])) == b"\x00\x3c\x00\xc0"


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00\x3c\x00"])
def test_template_of_odd_or_zero_length_is_rejected(data: bytes) -> None:
    with pytest.raises(TemplateError):
        template_from_bytes(data)


def test_template_must_be_a_vector() -> None:
    with pytest.raises(TemplateError):
        template_to_bytes(np.ones((2, 2)))


def test_a_renamed_watchlist_topic_redacts_subject_ids_in_the_worker() -> None:
    # the worker's stages know their input is biometric whatever it is called
    from streams.worker.source import SourceRecord, reject

    record = SourceRecord("force-b.watchlist", 1, 9, b"wl-3:subject-secret", b"\xc3\x01xx", 0)
    letter = reject(record, ValueError("bad"), "worker.watchlist", biometric=True)
    assert letter["key"] == "wl-3:<redacted>" and letter["payload"] is None
    assert "subject-secret" not in repr(letter)
