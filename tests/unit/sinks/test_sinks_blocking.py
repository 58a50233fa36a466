"""The sink loop against fakes: an environment failure polls, commits and dead-letters nothing."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from schemas.codec import encode
from sinks.errors import SinkBlockedTooLong, server_error
from sinks.features import ServerFeatures, features_for
from sinks.sink import Sink, SinkOptions
from streams.settings import Settings
from tests.synthetic import generate


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


@dataclass
class Record:
    offset: int
    key: bytes
    value: bytes
    timestamp: int


class FakeConsumer:
    """One partition of scans, handed out once; records every poll and commit."""

    def __init__(self, tp: TP, values: list[bytes]) -> None:
        self.tp = tp
        self.pending = [Record(i, b"site", v, 1_000) for i, v in enumerate(values)]
        self.polls = 0
        self.commits: list[int] = []

    def subscribe(self, topics: Sequence[str], listener: Any = None) -> None:
        pass

    def poll(self, timeout_ms: int, max_records: int) -> dict[TP, list[Record]]:
        self.polls += 1
        out, self.pending = self.pending, []
        return {self.tp: out} if out else {}

    def highwater(self, tp: TP) -> int:
        return 3

    def assignment(self) -> set[TP]:
        return {self.tp}

    def commit(self, offsets: dict[TP, Any]) -> None:
        self.commits.extend(o.offset for o in offsets.values())


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def send(self, topic: str, key: bytes, value: bytes) -> Any:
        self.sent.append((topic, value))
        raise AssertionError("nothing may be dead-lettered here")

    def flush(self, timeout: float) -> None:
        pass


class WrongPassword:
    """A server that refuses every statement until ``fixed`` is set."""

    def __init__(self) -> None:
        self.fixed = False
        self.rows = 0
        self.calls = 0

    @property
    def features(self) -> ServerFeatures:
        return features_for("18.16.1")

    def _check(self) -> None:
        self.calls += 1
        if not self.fixed:
            raise server_error("Code: 193. Wrong password for user ingest", 193)

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        self._check()
        return [(1,)]

    def insert(self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]],
               dedup_token: str | None = None) -> None:  # fmt: skip
        self._check()
        self.rows += len(data[0])


def _sink(db: WrongPassword, max_blocked_s: float = 600) -> tuple[Sink, FakeConsumer]:
    settings = Settings()
    scans = generate(3, deployments=1, scans_per_deployment=3, alerts_per_deployment=0).scans
    consumer = FakeConsumer(TP(settings.topic_scans, 0), [encode("Scan", s) for s in scans])
    options = SinkOptions(batch_size=3, linger_s=0, max_backoff_s=0.01,
                          rollup_interval_s=1e9, retention_interval_s=0,
                          max_blocked_s=max_blocked_s)  # fmt: skip
    sink = Sink(settings, db, consumer, FakeProducer(), options)
    return sink, consumer


def test_blocked_sink_retries_the_batch_it_holds_without_polling_or_committing() -> None:
    db = WrongPassword()
    db.fixed = True  # the login works at start ...
    sink, consumer = _sink(db)
    db.fixed = False  # ... then the password is rotated under the running sink
    stop = threading.Event()
    sink.step(stop)  # polls the batch, the insert is refused
    assert consumer.polls == 1 and consumer.commits == [] and sink.block.cause == "authentication"
    for _ in range(20):
        sink.step(stop)
    assert consumer.polls == 1, "a blocked sink must not fetch more"
    assert consumer.commits == [] and db.rows == 0
    assert db.calls > 5  # it kept retrying the same batch
    assert sink.status()[0] is False and "Wrong password" in sink.status()[1]
    db.fixed = True
    for _ in range(20):
        sink.step(stop)
        if consumer.commits:
            break
    assert consumer.commits == [3] and db.rows == 3 and sink.status() == (True, "ready")


def test_blocked_longer_than_the_bound_raises() -> None:
    sink, _ = _sink(WrongPassword(), max_blocked_s=0.05)
    with pytest.raises(SinkBlockedTooLong, match=r"blocked \(authentication\)"):
        sink.run(threading.Event())


class Unassigned(FakeConsumer):
    """A consumer the group gave no partition (as after a broker restart), records waiting."""

    def __init__(self, tp: TP) -> None:
        super().__init__(tp, [])
        self.assigned: set[TP] = set()
        self.committed_offset: int | None = None

    def assignment(self) -> set[TP]:
        return self.assigned

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0} if topic == self.tp.topic else set()

    def end_offsets(self, tps: list[Any], timeout_ms: int) -> dict[Any, int]:
        return {tp: 10 for tp in tps}

    def beginning_offsets(self, tps: list[Any], timeout_ms: int) -> dict[Any, int]:
        return {tp: 0 for tp in tps}

    def committed(self, tp: Any, timeout_ms: int) -> int | None:
        return self.committed_offset


def _steps(sink: Sink, n: int = 6) -> None:
    stop = threading.Event()
    for _ in range(n):
        sink.step(stop)
        stop.wait(0.02)


def test_no_partitions_while_records_wait_and_nobody_commits_is_blocked() -> None:
    db = WrongPassword()
    db.fixed = True
    settings = Settings()
    consumer = Unassigned(TP(settings.topic_scans, 0))
    options = SinkOptions(unassigned_grace_s=0.01, rollup_interval_s=1e9, retention_interval_s=0)
    sink = Sink(settings, db, consumer, FakeProducer(), options)
    _steps(sink)
    assert sink.block.cause == "kafka_unassigned"
    assert "10 records wait" in sink.status()[1]
    polls = consumer.polls
    _steps(sink)
    assert consumer.polls > polls, "it keeps polling: polling is how it rejoins the group"
    consumer.assigned = {consumer.tp}
    _steps(sink, 1)
    assert sink.status() == (True, "ready")


def test_a_peer_that_commits_is_not_a_block() -> None:
    db = WrongPassword()
    db.fixed = True
    settings = Settings()
    consumer = Unassigned(TP(settings.topic_scans, 0))
    options = SinkOptions(unassigned_grace_s=0.01, rollup_interval_s=1e9, retention_interval_s=0)
    sink = Sink(settings, db, consumer, FakeProducer(), options)
    for offset in range(1, 8):  # another member of the group holds the partition and commits
        consumer.committed_offset = offset
        _steps(sink, 1)
    assert sink.status() == (True, "ready")


class RollupRefused(WrongPassword):
    """Inserts work; the rollup's statements fail with a code the table does not list."""

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        if sql.strip() != "SELECT 1":
            raise server_error("Code: 171. Cannot convert column r because it is constant", 171)
        return [(1,)]


def test_a_failing_rollup_is_retried_later_and_never_stops_the_sink() -> None:
    db = RollupRefused()
    db.fixed = True
    sink, consumer = _sink(db)
    sink.options = SinkOptions(batch_size=3, linger_s=0, rollup_interval_s=0,
                               retention_interval_s=0)  # fmt: skip
    _steps(sink, 3)
    assert consumer.commits == [3] and sink.dirty_days  # written; the days wait for a rollup
    assert sink.status() == (True, "ready")
