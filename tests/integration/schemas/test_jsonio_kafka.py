"""lfr publish / lfr consume against the real broker."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from common.settings import Settings
from schemas.codec import decode
from streams.jsonio import consume_command, publish_command
from tests.unit.schemas.avro_strategies import detection, json_line, watchlist_entry

pytestmark = pytest.mark.integration


def _line(record: dict[str, Any]) -> str:
    return json_line(record)


def _publish(settings: Settings, topic: str, path: Path, skip_invalid: bool = False) -> int:
    args = argparse.Namespace(topic=topic, file=path, skip_invalid=skip_invalid)
    return publish_command(args, settings)


def _consume(settings: Settings, topic: str, capsys: Any, **options: Any) -> list[dict[str, Any]]:
    args = argparse.Namespace(topic=topic, from_beginning=True, max=None, timeout=5.0)
    for name, value in options.items():
        setattr(args, name, value)
    assert consume_command(args, settings) == 0
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


@pytest.fixture
def settings(kafka_topic: Callable[..., str], test_settings: Callable[..., Settings]) -> Settings:
    return test_settings(
        topic_detections=kafka_topic("schemas-det", partitions=3),
        topic_watchlist=kafka_topic("schemas-wl", partitions=2),
    )


def test_publish_then_consume_detections(settings: Settings, tmp_path: Path, capsys: Any) -> None:
    records = [detection(site_id=f"site-{i}") for i in range(5)]
    path = tmp_path / "detections.jsonl"
    path.write_text("\n".join(_line(r) for r in records) + "\n")

    assert _publish(settings, "detections", path) == 0
    assert "5 published" in capsys.readouterr().out

    seen = _consume(settings, "detections", capsys, max=5, timeout=15.0)
    assert sorted(r["event_id"] for r in seen) == sorted(r["event_id"] for r in records)
    assert all(r["template"] == "<elided: 1024 bytes>" for r in seen)


def test_a_bad_line_publishes_nothing_unless_skipped(
    settings: Settings, tmp_path: Path, capsys: Any
) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([_line(detection()), "{oops", _line(detection())]) + "\n")

    assert _publish(settings, "detections", path) == 1
    assert f"{path}:2:" in capsys.readouterr().err
    assert _consume(settings, "detections", capsys, timeout=3.0) == []

    assert _publish(settings, "detections", path, skip_invalid=True) == 0
    assert "2 published to" in capsys.readouterr().out
    assert len(_consume(settings, "detections", capsys, max=2, timeout=15.0)) == 2


def test_watchlist_key_is_watchlist_and_subject(settings: Settings, tmp_path: Path) -> None:
    from kafka import KafkaConsumer

    entries = [watchlist_entry(subject_id="s-1", watchlist_id=w) for w in ("wl-a", "wl-b")]
    path = tmp_path / "watchlist.jsonl"
    path.write_text("\n".join(_line(e) for e in entries) + "\n")
    assert _publish(settings, "watchlist", path) == 0

    consumer = KafkaConsumer(
        settings.topic_watchlist,
        **settings.kafka_python_config(),
        group_id=None,
        auto_offset_reset="earliest",
        consumer_timeout_ms=15000,
    )
    try:
        messages = []
        for message in consumer:
            messages.append(message)
            if len(messages) == 2:
                break
    finally:
        consumer.close()
    assert sorted(m.key for m in messages) == [b"wl-a:s-1", b"wl-b:s-1"]
    assert {decode("WatchlistEntry", m.value)["watchlist_id"] for m in messages} == {"wl-a", "wl-b"}
