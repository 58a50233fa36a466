"""Files for ``lfr publish``, the ``lfr simulate`` command, and Kafka publishing (fake producer)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from common.settings import Settings
from schemas.codec import decode
from streams.cli import main
from streams.jsonio import parse_lines
from streams.simulator import build_scenario, ground_truth
from streams.simulator.events import TimedRecord, timeline
from streams.simulator.files import TRUTH_FILE, file_name
from streams.simulator.kafka_out import Pacer, publish

TOPICS = ("operations", "watchlist", "detections", "adjudications")


def _run(out: Path, *extra: str) -> int:
    return main(["simulate", "--scenario", "small", "--seed", "11", "--out", str(out), *extra])


def test_simulate_writes_identical_files_for_a_seed(tmp_path: Path) -> None:
    assert _run(tmp_path / "a") == 0
    assert _run(tmp_path / "b") == 0
    for name in [*(file_name(t) for t in TOPICS), TRUTH_FILE]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_files_are_accepted_by_lfr_publish_parsing(tmp_path: Path) -> None:
    assert _run(tmp_path) == 0
    for topic in TOPICS:
        with (tmp_path / file_name(topic)).open(encoding="utf-8") as lines:
            parsed = parse_lines(topic, lines)
        assert parsed.rejects == []
        assert parsed.messages


def test_truth_file_equals_ground_truth_function(tmp_path: Path) -> None:
    assert _run(tmp_path) == 0
    written = json.loads((tmp_path / TRUTH_FILE).read_text(encoding="utf-8"))
    assert written == json.loads(json.dumps(ground_truth(build_scenario("small", 11))))


def test_summary_is_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(tmp_path) == 0
    out = capsys.readouterr().out
    assert "FIXED_REMOTE:" in out and "VAN:" in out and "time to locate" in out


class _Future:
    def add_errback(self, fn: Any) -> None:
        self.errback = fn


class _FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []
        self.flushed = False
        self.flushed_after: list[int] = []  # how many records were sent at each flush

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None) -> _Future:
        self.sent.append((topic, key, value))
        return _Future()

    def flush(self) -> None:
        self.flushed = True
        self.flushed_after.append(len(self.sent))


def test_publish_encodes_in_order_with_settings_topics() -> None:
    settings = Settings(topic_detections="t.det", topic_adjudications="t.adj")
    records = list(timeline(build_scenario("small", 11)))
    producer = _FakeProducer()
    counts = publish(records, settings, producer=producer)
    assert producer.flushed
    assert sum(counts.values()) == len(records) == len(producer.sent)
    names = {
        "detections": "t.det",
        "adjudications": "t.adj",
        "operations": settings.topic_operations,
        "watchlist": settings.topic_watchlist,
    }
    record_names = {
        "t.det": "DetectionEvent",
        "t.adj": "Adjudication",
        settings.topic_operations: "OperationWindow",
        settings.topic_watchlist: "WatchlistEntry",
    }
    for item, (topic, key, value) in zip(records, producer.sent, strict=True):
        assert topic == names[item.topic]
        assert key == item.key
        if item.value is None:
            assert value is None
            continue
        assert value is not None
        decoded = decode(record_names[topic], value)
        assert {k: v for k, v in decoded.items() if not isinstance(v, float)} == {
            k: v for k, v in item.value.items() if not isinstance(v, float)
        }


def test_reference_records_are_flushed_before_the_detections_they_serve() -> None:
    settings = Settings()
    records = list(timeline(build_scenario("small", 11)))
    producer = _FakeProducer()
    publish(records, settings, producer=producer)
    reference = {settings.topic_watchlist, settings.topic_operations}
    flushed = set(producer.flushed_after)
    unflushed_reference = False
    for i, (topic, _, _) in enumerate(producer.sent):
        if i in flushed:
            unflushed_reference = False
        if topic == settings.topic_detections:
            assert not unflushed_reference, f"detection #{i} sent while a reference record waits"
        elif topic in reference:
            unflushed_reference = True
    # one flush per switch from reference records to detections, not one per record
    assert 1 < len(producer.flushed_after) < len(records) / 10


def test_pacer_follows_event_time_and_caps_gaps() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(speed=100.0, max_gap_s=2.0, clock=lambda: now[0], sleep=sleep)
    pacer.wait(0)
    pacer.wait(50_000)  # 50 s of event time at 100x: 0.5 s
    pacer.wait(10_000_000)  # a long idle gap: capped at 2 s
    pacer.wait(10_000_000)  # same instant: no wait
    assert slept == pytest.approx([0.5, 2.0])


def test_unpaced_publishing_never_sleeps() -> None:
    pacer = Pacer(speed=0.0, max_gap_s=1.0, sleep=lambda s: pytest.fail("slept"))
    for at in (0, 10**9, 2 * 10**9):
        pacer.wait(at)


def test_timed_record_unpacks_like_the_generate_tuple() -> None:
    item = TimedRecord(1, "detections", b"k", {"a": 1})
    at, topic, key, value = item
    assert (at, topic, key, value) == (1, "detections", b"k", {"a": 1})
