"""JSON lines to keyed Avro messages and back (streams.jsonio, no broker)."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest

from schemas.codec import decode
from schemas.templates import template_from_bytes
from streams.jsonio import parse_lines, render_record
from tests.unit.schemas.avro_strategies import (
    NOW,
    adjudication,
    detection,
    json_line,
    operation_window,
    watchlist_entry,
)


def _detection_line(**overrides: Any) -> dict[str, Any]:
    return json.loads(json_line(detection(**overrides)))


def test_detection_with_base64_template_iso_instant_and_site_key() -> None:
    line = _detection_line()
    parsed = parse_lines("detections", [json.dumps(line)], now=NOW)
    assert parsed.rejects == []
    [(key, value)] = parsed.messages
    assert key == b"croydon"
    decoded = decode("DetectionEvent", value)
    assert decoded["event_id"] == line["event_id"]
    assert decoded["template"] == base64.b64decode(line["template"])


def test_template_as_a_list_of_floats_and_epoch_millis() -> None:
    vector = np.ones(512, dtype=np.float32) / np.sqrt(512)
    line = _detection_line()
    line["template"] = vector.tolist()
    line["captured_at"] = 1_760_000_000_123
    [(_, value)] = parse_lines("detections", [json.dumps(line)], now=NOW).messages
    decoded = decode("DetectionEvent", value)
    np.testing.assert_allclose(template_from_bytes(decoded["template"]), vector, atol=1e-3)
    assert decoded["captured_at"].timestamp() == 1_760_000_000.123


def test_keys_follow_the_contract() -> None:
    lines = {
        "watchlist": watchlist_entry(),
        "operations": operation_window(),
        "adjudications": adjudication(alert_id="alert-9"),
    }
    expected = {
        "watchlist": b"wl-1:subject-1",
        "operations": b"croydon",
        "adjudications": b"alert-9",
    }
    for topic, record in lines.items():
        parsed = parse_lines(topic, [json_line(record)], now=NOW)
        assert parsed.rejects == [], topic
        assert parsed.messages[0][0] == expected[topic]


def test_bad_lines_are_reported_with_their_numbers() -> None:
    good = json.dumps(_detection_line())
    naive = _detection_line()
    naive["captured_at"] = "2025-10-14T09:00:00"
    lines = [
        good,
        "{not json",
        "",
        json.dumps({**_detection_line(), "face_quality": 3}),
        json.dumps({**_detection_line(), "selfie": "x"}),
        json.dumps(naive),
        json.dumps({**_detection_line(), "template": "%%%"}),
        json.dumps({**_detection_line(), "template": [float("nan")] * 512}),
        json.dumps([1, 2]),
        good,
    ]
    parsed = parse_lines("detections", lines, now=NOW)
    assert [n for n, _ in parsed.rejects] == [2, 4, 5, 6, 7, 8, 9]
    assert len(parsed.messages) == 2
    assert parsed.blank == 1
    reasons = dict(parsed.rejects)
    assert "face_quality" in reasons[4]
    assert "selfie" in reasons[5]
    assert "time zone" in reasons[6]
    assert "base64" in reasons[7]
    assert "non-finite" in reasons[8]


def test_rendering_elides_templates_and_writes_utc_instants() -> None:
    record = detection()
    text = render_record(record)
    assert base64.b64encode(record["template"]).decode() not in text
    rendered = json.loads(text)
    assert rendered["template"] == "<elided: 1024 bytes>"
    assert rendered["captured_at"].endswith("Z")


@pytest.mark.parametrize("payload", [b"\x00\x01", None])
def test_rendering_other_bytes_as_base64(payload: bytes | None) -> None:
    rendered = json.loads(render_record({"payload": payload}))
    assert rendered["payload"] == (None if payload is None else "AAE=")


def test_rendering_redacts_subject_ids() -> None:
    rendered = json.loads(render_record(watchlist_entry(subject_id="S-42")))
    assert rendered["subject_id"] == "<redacted>"
    assert "S-42" not in render_record(watchlist_entry(subject_id="S-42"))
