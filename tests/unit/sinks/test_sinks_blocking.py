"""The sink loop against fakes: an environment failure polls, commits and dead-letters nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from common.settings import Settings
from schemas.codec import encode
from sinks.errors import SinkBlockedTooLong, server_error
from sinks.features import ServerFeatures, features_for
from sinks.sink import Sink, SinkOptions
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
        self.subscriptions = 0
        self.commits: list[int] = []

    def subscribe(self, topics: Sequence[str], listener: Any = None) -> None:
        self.subscriptions += 1

    def unsubscribe(self) -> None:
        pass

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0} if topic == self.tp.topic else set()

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
    assert consumer.subscriptions > 1  # it joined again, with fresh metadata
    polls = consumer.polls
    _steps(sink)
    assert consumer.polls > polls, "it keeps polling: polling is how it rejoins the group"
    # the rejoin works: partitions, and records again
    scan = generate(4, deployments=1, scans_per_deployment=1, alerts_per_deployment=0).scans[0]
    consumer.assigned = {consumer.tp}
    consumer.pending = [Record(0, b"site", encode("Scan", scan), 1_000)]
    _steps(sink, 1)
    assert sink.status() == (True, "ready")


def test_an_assignment_that_fetches_nothing_while_records_wait_is_blocked() -> None:
    db = WrongPassword()
    db.fixed = True
    settings = Settings()
    consumer = Unassigned(TP(settings.topic_scans, 0))
    consumer.assigned = {consumer.tp}  # stale: the broker restarted, nothing comes
    options = SinkOptions(unassigned_grace_s=0.01, rollup_interval_s=1e9, retention_interval_s=0)
    sink = Sink(settings, db, consumer, FakeProducer(), options)
    _steps(sink)
    assert sink.block.cause == "kafka_stalled"
    assert "nothing fetched" in sink.status()[1]
    assert consumer.subscriptions >= 1  # it joined the group again


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


class Rebalancing(FakeConsumer):
    """Delivers offsets 0-2, then a rebalance that gives the same partition back.

    kafka-python keeps the fetch position of a partition that stays assigned, so
    without a seek the next poll would continue at offset 3.
    """

    def __init__(self, tp: TP, values: list[bytes], listener_of: Callable[[], Any]) -> None:
        super().__init__(tp, values)
        self.listener_of = listener_of
        self.position = 0
        self.seeks: list[int] = []
        self.records = list(self.pending)

    def poll(self, timeout_ms: int, max_records: int) -> dict[TP, list[Record]]:
        self.polls += 1
        if self.polls == 2:  # the group rebalances inside this poll
            sink = self.listener_of()
            sink.on_partitions_revoked([self.tp])
            sink.on_partitions_assigned([self.tp])
        out = self.records[self.position : self.position + 3]
        self.position += len(out)
        return {self.tp: out} if out else {}

    def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append(offset)
        self.position = offset

    def highwater(self, tp: TP) -> int:
        return len(self.records)


def test_a_partition_revoked_and_given_back_is_re_read_from_its_first_uncommitted_offset() -> None:
    db = WrongPassword()
    db.fixed = True
    settings = Settings()
    scans = generate(5, deployments=1, scans_per_deployment=6, alerts_per_deployment=0).scans
    holder: dict[str, Sink] = {}
    consumer = Rebalancing(TP(settings.topic_scans, 0), [encode("Scan", s) for s in scans],
                           lambda: holder["sink"])  # fmt: skip
    # a batch of 6 offsets: 0-2 wait in the open batch when the rebalance comes
    options = SinkOptions(batch_size=6, linger_s=60, rollup_interval_s=1e9, retention_interval_s=0)
    sink = holder["sink"] = Sink(settings, db, consumer, FakeProducer(), options)
    _steps(sink, 4)
    assert db.rows == 6 and consumer.commits == [6]  # every scan, none skipped
    assert consumer.seeks == [0]


class CommitRefusedOnce(FakeConsumer):
    """The first commit finds this member out of the group; joining again gives it back."""

    def subscribe(self, topics: Sequence[str], listener: Any = None) -> None:
        super().subscribe(topics, listener)
        self.listener = listener
        self.seeks: list[int] = []
        if self.subscriptions > 1:  # the rejoin: same partition, fetch from the seek
            listener.on_partitions_assigned([self.tp])

    def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append(offset)
        self.pending = self.all[offset:]

    def poll(self, timeout_ms: int, max_records: int) -> dict[TP, list[Record]]:
        if not hasattr(self, "all"):
            self.all = list(self.pending)
        return super().poll(timeout_ms, max_records)

    def commit(self, offsets: dict[TP, Any]) -> None:
        from kafka.errors import CommitFailedError

        if not getattr(self, "refused", False):
            self.refused = True
            raise CommitFailedError("the group is rebalancing")
        super().commit(offsets)


def test_a_refused_commit_keeps_the_batch_until_it_commits() -> None:
    db = WrongPassword()
    db.fixed = True
    settings = Settings()
    scans = generate(3, deployments=1, scans_per_deployment=3, alerts_per_deployment=0).scans
    consumer = CommitRefusedOnce(TP(settings.topic_scans, 0), [encode("Scan", s) for s in scans])
    options = SinkOptions(batch_size=3, linger_s=0, rollup_interval_s=1e9, retention_interval_s=0)
    sink = Sink(settings, db, consumer, FakeProducer(), options)
    sink.subscribe()
    _steps(sink, 3)
    # it joined the group again; the partition came back and was re-read from offset 0
    assert consumer.subscriptions == 2 and consumer.seeks == [0]
    assert consumer.commits == [3]
    assert db.rows == 6  # written twice (idempotent in ClickHouse), never skipped
    assert sink.status() == (True, "ready")  # a rebalance is not a block
