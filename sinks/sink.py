"""``lfr sink``: Kafka topics -> ClickHouse, exact under crashes and redelivery.

Order of work for every batch (one topic-partition, deterministic offset
window, see :mod:`sinks.batching`):

1. decode and map each record; a record that fails goes to the dead letters
   of this batch (never stops the batch);
2. insert the rows as one columnar block with a deduplication token; a block
   the server rejects is bisected until the rejected rows are isolated and
   dead-lettered, the rest inserted;
3. produce the dead letters and flush the producer;
4. commit the offset after the batch.

A crash anywhere before 4 redelivers the batch; ReplacingMergeTree on
natural ids (and the token, where supported) makes the second insert
harmless.

Which failures are whose (invariant 7, :mod:`sinks.errors`): a row the server
rejects for its values is dead-lettered; a failure of the environment
(credentials, rights, a missing database or table, the network, Kafka) blocks
the sink (:mod:`sinks.blocking`): the same batch is retried with exponential
backoff, nothing is committed or dead-lettered, and the consumer is not
polled, so memory holds only what was already fetched: one fetch response (at
most ``fetch_max_bytes``), one poll of at most ``batch_size`` records, and the
open batches. /readyz answers 503 with the cause; after
``LFR_SINK_MAX_BLOCKED_S`` the sink exits 1 for its supervisor to restart it.
A consumer left without partitions while its topics wait (seen after a broker
restart) counts as blocked too.

Per-row work is kept small on purpose (measured with bench/sink_bench.py):
kafka-python's record parsing and the Avro decode dominate, then the
ClickHouse insert itself.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from kafka.errors import CommitFailedError, KafkaError

from common.failures import CAUSES, classify_exception
from common.log_limit import limited
from common.settings import Settings
from schemas.codec import decode_millis, encode
from schemas.deadletter import dead_letter, reasons
from schemas.errors import SchemaError
from sinks import metrics
from sinks.batching import Batch, Message, PartitionBuffer, bisect
from sinks.blocking import Blockage
from sinks.db import Database
from sinks.errors import (
    ClickHouseError,
    ClickHouseRefused,
    ClickHouseRejected,
    ClickHouseUnavailable,
    SinkBlockedTooLong,
    UnmappableRecord,
)
from sinks.retention import PERSON_DAYS, SCAN_DAYS, run_retention
from sinks.rollup import rollup
from sinks.rows import (
    ALERTS,
    DEAD_LETTER_COLUMNS,
    OPERATION_WINDOWS,
    OUTCOMES,
    SCANS,
    Row,
    TableSpec,
    columnar,
    dead_letter_row,
)
from streams.topics import CATALOGUE, biometric_topic_names

log = logging.getLogger(__name__)

STAGE = "sink"

# blocks during which the sink keeps polling: a poll is how a consumer rejoins its group
POLLING_CAUSES = frozenset({"kafka_unassigned", "kafka_stalled"})


@dataclass(frozen=True)
class Route:
    """Where one topic's records go."""

    record: str
    table: str
    columns: tuple[str, ...]
    map_row: Callable[[Mapping[str, Any], int, int], Row]
    is_dead_letter_topic: bool = False


def _spec_route(spec: TableSpec) -> Route:
    return Route(spec.record, spec.name, spec.columns, lambda rec, _p, _o: spec.map_record(rec))


def _table_routes() -> dict[str, Route]:
    """Every ClickHouse row table the sink writes, by table name."""
    routes = {spec.name: _spec_route(spec) for spec in (SCANS, ALERTS, OUTCOMES, OPERATION_WINDOWS)}
    routes["dead_letters"] = Route(
        "DeadLetter", "dead_letters", DEAD_LETTER_COLUMNS, dead_letter_row, True
    )
    return routes


TABLE_ROUTES = _table_routes()


def routes_for(settings: Settings) -> dict[str, Route]:
    """Topic -> route: every catalogue topic with a ``sink_table``, under the settings' names.

    The catalogue says which topic lands in which table; this module says how
    its records become rows. A catalogue entry whose record is not the
    table's raises here, at start, instead of failing row by row.
    """
    routes: dict[str, Route] = {}
    for topic in CATALOGUE:
        if topic.sink_table is None:
            continue
        route = TABLE_ROUTES[topic.sink_table]
        if route.record != topic.record:
            raise ValueError(
                f"catalogue topic {topic.short} carries {topic.record}, "
                f"but table {route.table} is built from {route.record}"
            )
        routes[topic.name(settings)] = route
    return routes


@dataclass(frozen=True)
class SinkOptions:
    """Tuning of the sink loop (command-line options of ``lfr sink``)."""

    batch_size: int = 5000
    linger_s: float = 1.0
    poll_timeout_ms: int = 200
    max_backoff_s: float = 5.0
    # continuous blocking after which the sink exits 1 (LFR_SINK_MAX_BLOCKED_S)
    max_blocked_s: float = 600.0
    # this long without partitions while the group's topics wait counts as blocked
    unassigned_grace_s: float = 30.0
    rollup_interval_s: float = 10.0
    retention_interval_s: float = 3600.0
    person_days: int = PERSON_DAYS
    scan_days: int = SCAN_DAYS
    # Kafka fetch sizes: a fetch of many small records is what keeps the sink near the
    # speed of a raw insert; fetch_max_bytes bounds one fetch response (so memory)
    fetch_max_bytes: int = 32 * 1024 * 1024
    max_partition_fetch_bytes: int = 8 * 1024 * 1024


def consumer_config(options: SinkOptions) -> dict[str, Any]:
    """kafka-python consumer options of the sink (besides security and the group)."""
    return {
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": options.batch_size,
        "fetch_max_bytes": options.fetch_max_bytes,
        "max_partition_fetch_bytes": options.max_partition_fetch_bytes,
    }


@dataclass
class BatchOutcome:
    """What writing one batch did.

    ``timestamps_ms`` are the Kafka record timestamps and ``captured_ms`` the
    captured_at instants (tables that have one) of the rows inserted.
    """

    inserted: int
    dead: list[dict[str, Any]]
    skipped: int
    days: set[str]
    timestamps_ms: list[int] = field(default_factory=list)
    captured_ms: list[int] = field(default_factory=list)


def days_of(seconds: list[int]) -> set[str]:
    """The UTC dates (ISO) of epoch seconds."""
    return {
        datetime.fromtimestamp(day * 86_400, UTC).date().isoformat()
        for day in {s // 86_400 for s in seconds}
    }


class BatchWriter:
    """Steps 1-2 of a batch: decode, map, insert (bisecting rejections). No Kafka."""

    def __init__(self, db: Database, database: str, routes: Mapping[str, Route],
                 biometric: frozenset[str]) -> None:  # fmt: skip
        self.db = db
        self.database = database
        self.routes = routes
        self.biometric = biometric

    def _dead(self, batch: Batch, message: Message, error: BaseException) -> dict[str, Any]:
        letter = dead_letter(
            topic=batch.topic, partition=batch.partition, offset=message.offset,
            key=message.key, payload=message.value, error=error, stage=STAGE,
            biometric=self.biometric,
        )  # fmt: skip
        metrics.DEAD_LETTERS.labels(letter["reason"]).inc()
        return letter

    def write(self, batch: Batch) -> BatchOutcome:
        """Insert the batch's rows; the dead letters it produced (to be sent by the caller)."""
        route = self.routes[batch.topic]
        rows: list[tuple[Message, Row]] = []
        dead: list[dict[str, Any]] = []
        skipped = 0
        name, map_row, partition = route.record, route.map_row, batch.partition
        for message in batch.messages:
            value = message.value
            if value is None:
                skipped += 1  # a tombstone of a compacted topic: nothing to store
                continue
            try:
                record = decode_millis(name, value)  # instants as epoch ms: no datetime per field
                rows.append((message, map_row(record, partition, message.offset)))
            except (SchemaError, UnmappableRecord) as exc:
                if route.is_dead_letter_topic:
                    # never dead-letter a dead letter: that could loop forever
                    log.error("undecodable dead letter %s/%d@%d: %s",
                              batch.topic, batch.partition, message.offset, exc,
                              extra=limited("sink.dead_letter"))  # fmt: skip
                    skipped += 1
                    continue
                dead.append(self._dead(batch, message, exc))
        rejected = self._insert(route, rows, batch.token) if rows else []
        for message, rejection in rejected:
            if route.is_dead_letter_topic:
                log.error("dead letter %s/%d@%d rejected: %s",
                          batch.topic, batch.partition, message.offset, rejection,
                          extra=limited("sink.dead_letter"))  # fmt: skip
                skipped += 1
            else:
                dead.append(self._dead(batch, message, rejection))
        if rejected:
            refused = {id(message) for message, _ in rejected}
            rows = [pair for pair in rows if id(pair[0]) not in refused]
        outcome = BatchOutcome(len(rows), dead, skipped, set())
        outcome.timestamps_ms = [m.timestamp_ms for m, _ in rows]
        if "captured_at" in route.columns:
            seconds = [r["captured_at"] for _, r in rows]
            outcome.days = days_of(seconds)
            outcome.captured_ms = [s * 1000 + r["captured_at_ms"] for s, (_, r) in
                                   zip(seconds, rows, strict=True)]  # fmt: skip
        return outcome

    def _insert(
        self, route: Route, rows: list[tuple[Message, Row]], token: str
    ) -> list[tuple[Message, ClickHouseRejected]]:
        table = f"{self.database}.{route.table}"
        started = time.perf_counter()
        try:
            self.db.insert(table, route.columns, columnar(route.columns, [r for _, r in rows]),
                           dedup_token=token)  # fmt: skip
        except ClickHouseUnavailable:
            metrics.INSERT_FAILURES.labels(route.table, "unavailable").inc()
            metrics.CLICKHOUSE_UP.set(0)
            raise
        except ClickHouseRefused:
            metrics.INSERT_FAILURES.labels(route.table, "refused").inc()
            raise
        except ClickHouseRejected as exc:
            metrics.INSERT_FAILURES.labels(route.table, "rejected").inc()
            if len(rows) == 1:
                return [(rows[0][0], exc)]
            left, right = bisect(rows)
            first = self._insert(route, left, token + "/a")
            return first + self._insert(route, right, token + "/b")
        metrics.CLICKHOUSE_UP.set(1)
        metrics.INSERT_SECONDS.labels(route.table).observe(time.perf_counter() - started)
        metrics.BATCH_ROWS.labels(route.table).observe(len(rows))
        return []


def observe_committed(table: str, outcome: BatchOutcome, now_s: float) -> None:
    """Per-row latency (Kafka timestamp -> committed) and event age (captured_at -> now)."""
    now_ms = now_s * 1000
    stamps = np.asarray(outcome.timestamps_ms, dtype=np.float64)
    stamps = stamps[stamps >= 0]  # -1: a record without a timestamp (old message format)
    # a clock ahead of ours must not give a negative latency
    metrics.COMMIT_LATENCY.labels(table).observe_many(np.maximum(0.0, now_ms - stamps) / 1000)
    if outcome.captured_ms:
        captured = np.asarray(outcome.captured_ms, dtype=np.float64)
        metrics.EVENT_AGE.labels(table).observe_many(np.maximum(0.0, now_ms - captured) / 1000)


class Sink:
    """The consume -> insert -> dead-letter -> commit loop."""

    def __init__(self, settings: Settings, db: Database, consumer: Any, producer: Any,
                 options: SinkOptions | None = None,
                 retention_db: Database | None = None) -> None:  # fmt: skip
        """``db`` inserts and rolls up (the ingest user suffices); ``retention_db``
        drops partitions, which needs DDL rights (the admin user; default ``db``)."""
        self.settings = settings
        self.options = options or SinkOptions()
        self.db = db
        self.retention_db = retention_db if retention_db is not None else db
        self.consumer = consumer
        self.producer = producer
        self.routes = routes_for(settings)
        self.writer = BatchWriter(db, settings.clickhouse_database, self.routes,
                                  biometric_topic_names(settings))  # fmt: skip
        self.buffers: dict[Any, PartitionBuffer] = {}
        self._rewind: dict[Any, int] = {}  # revoked partition -> first uncommitted offset
        self.block = Blockage(self.options.max_blocked_s, self.options.max_backoff_s)
        self._unassigned_since: float | None = None
        self._next_assignment_check = 0.0
        self._committed_total: int | None = None
        self.dirty_days: set[str] = set()
        self._last_rollup = time.monotonic()
        self._last_retention = time.monotonic()
        self._inserts = 0
        metrics.initialise(
            topics=self.routes,
            tables=[r.table for r in self.routes.values()],
            aged_tables=[r.table for r in self.routes.values() if "captured_at" in r.columns],
            reasons=reasons(),
            causes=CAUSES,
        )

    # --- rebalance listener (kafka-python calls these inside poll) -----------
    def on_partitions_revoked(self, revoked: Any) -> None:
        """Forget uncommitted batches of revoked partitions, noting where they began.

        A partition that comes straight back keeps its fetch position in
        kafka-python (3.x preserves the state of partitions in both the old and
        the new assignment), so the records forgotten here would be skipped:
        :meth:`on_partitions_assigned` seeks it back to the first of them. A
        partition that goes elsewhere is re-read by its new owner from the
        committed offset.
        """
        for tp in revoked:
            buffer = self.buffers.pop(tp, None)
            first = buffer.first_uncommitted() if buffer is not None else None
            if first is not None:
                self._rewind[tp] = first
            try:
                metrics.CONSUMER_LAG.remove(tp.topic, str(tp.partition))
            except KeyError:
                pass  # never reported: no record seen since it was assigned

    def on_partitions_assigned(self, assigned: Any) -> None:
        """Seek partitions that came back to their first uncommitted offset."""
        rewind, self._rewind = self._rewind, {}
        for tp in assigned:
            if tp in rewind:
                self.consumer.seek(tp, rewind[tp])

    # --- loop ------------------------------------------------------------------
    def subscribe(self) -> None:
        """Subscribe to every routed topic."""
        from kafka import ConsumerRebalanceListener

        sink = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked: Any) -> None:
                sink.on_partitions_revoked(revoked)

            def on_partitions_assigned(self, assigned: Any) -> None:
                sink.on_partitions_assigned(assigned)

        # the group leader assigns only partitions its metadata knows: ask for the
        # topics first, or a sink started right after they were created gets none
        for topic in sorted(self.routes):
            self.consumer.partitions_for_topic(topic)
        self.consumer.subscribe(sorted(self.routes), listener=Listener())

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set; a final rollup of what was written.

        Raises :class:`SinkBlockedTooLong` after ``max_blocked_s`` of blocking.
        """
        self._await_clickhouse(stop)
        if stop.is_set():
            return
        self.subscribe()
        log.info("sink: %s -> %s", sorted(self.routes), self.settings.clickhouse_database)
        while not stop.is_set():
            self.step(stop)
        if not self.block.blocked:
            self._maybe_rollup(force=True)

    def _await_clickhouse(self, stop: threading.Event) -> None:
        """Before joining the group: the login, the database and the server answer."""
        while not stop.is_set():
            if self._probe_clickhouse():
                return
            stop.wait(max(0.0, self.block.retry_at - time.monotonic()))

    def _probe_clickhouse(self) -> bool:
        try:
            self.db.execute("SELECT 1")
        except ClickHouseRefused as exc:
            self._blocked_by(exc.cause, str(exc))
            return False
        self._unblocked()
        return True

    # --- blocking ----------------------------------------------------------------
    def status(self) -> tuple[bool, str]:
        """(ready, reason) for /readyz: not ready while blocked, with the cause."""
        return self.block.status()

    def _blocked_by(self, cause: str, message: str) -> None:
        now = time.monotonic()
        if self.block.fail(cause, message, now):
            log.error("sink blocked (%s): nothing is committed or dead-lettered until it "
                      "clears; retrying: %s", cause, message)  # fmt: skip
        metrics.PAUSED_PARTITIONS.set(len(self.buffers))
        if self.block.overdue(now):
            raise SinkBlockedTooLong(
                f"blocked ({cause}) for {now - (self.block.since or now):.0f}s, longer than "
                f"LFR_SINK_MAX_BLOCKED_S={self.options.max_blocked_s:g}: {message}"
            )

    def _unblocked(self) -> None:
        attempts, cause = self.block.attempts, self.block.cause
        lasted = self.block.recover(time.monotonic())
        if lasted is not None:
            metrics.PAUSED_PARTITIONS.set(0)
            log.warning("sink unblocked after %.1fs blocked (%s, %d failed attempts)",
                        lasted, cause, attempts)  # fmt: skip

    def step(self, stop: threading.Event | None = None) -> None:
        """One poll, then every batch that is due; while blocked, retry without polling."""
        now = time.monotonic()
        if self.block.blocked and self.block.cause not in POLLING_CAUSES:
            # consumption is paused simply by not polling: nothing more is held in memory.
            # Past max.poll.interval.ms the group moves on and uncommitted batches are
            # re-read from the committed offsets, which is exactly as safe.
            self._update_lag()
            if not self.block.due(now):
                (stop or threading.Event()).wait(min(self.block.retry_at - now, 0.5))
                return
            if not self._retry_held(now):
                return
        polled = self.consumer.poll(
            timeout_ms=self.options.poll_timeout_ms, max_records=self.options.batch_size
        )
        now = time.monotonic()
        for tp, records in polled.items():
            buffer = self.buffers.get(tp)
            if buffer is None:
                buffer = PartitionBuffer(tp.topic, tp.partition, self.options.batch_size)
                self.buffers[tp] = buffer
            for r in records:
                buffer.add(Message(r.offset, r.key, r.value, r.timestamp), now)
        for tp, buffer in list(self.buffers.items()):
            if buffer.open is not None:
                high = self.consumer.highwater(tp)
                caught_up = high is not None and buffer.open.last + 1 >= high
                buffer.seal_if_due(now, self.options.linger_s, caught_up)
            if not self._flush(tp, buffer):
                return
        self._watch_assignment(now, got_records=any(polled.values()))
        self._update_lag()
        self._maybe_rollup()
        self._maybe_retention()

    def _retry_held(self, now: float) -> bool:
        """Retry the batches held (or, holding none, the server); True when it cleared."""
        held = [(tp, b) for tp, b in self.buffers.items() if b.sealed]
        if not held:
            return self._probe_clickhouse()
        for tp, buffer in held:
            if not self._flush(tp, buffer):
                return False
        return True

    def _flush(self, tp: Any, buffer: PartitionBuffer) -> bool:
        """Write the partition's sealed batches in order; False when it must stop here."""
        while buffer.sealed:
            batch = buffer.sealed[0]
            try:
                self._write_and_commit(tp, batch)
            except ClickHouseRefused as exc:
                batch.attempts += 1
                self._blocked_by(exc.cause, str(exc))
                return False
            except CommitFailedError as exc:
                # the broker answered: not a block, but this member is out of the group
                # (e.g. after a broker restart). Join again; partitions that come back
                # are re-read from their first uncommitted offset, the others by their
                # new owner from the committed one
                log.warning("commit of %s refused, joining the group again: %s", batch.token,
                            exc, extra=limited("sink.commit_failed"))  # fmt: skip
                self._unblocked()
                self._rejoin()
                return False
            except KafkaError as exc:
                batch.attempts += 1
                cause = classify_exception(exc).cause
                self._blocked_by(cause, f"Kafka {type(exc).__name__}: {exc}")
                return False
            buffer.sealed.pop(0)
            self._unblocked()
        return True

    def _write_and_commit(self, tp: Any, batch: Batch) -> None:
        from kafka.structs import OffsetAndMetadata

        outcome = self.writer.write(batch)
        self.after_insert(batch)
        if outcome.dead:
            sent = [
                self.producer.send(
                    self.settings.topic_dlq,
                    key=batch.topic.encode(),
                    value=encode("DeadLetter", record),
                )
                for record in outcome.dead
            ]
            self.producer.flush(timeout=30)
            for future in sent:
                # a dead letter that did not reach the broker must hold the commit back
                future.get(timeout=0)
        self.consumer.commit({tp: OffsetAndMetadata(batch.last + 1, "", -1)})
        self.dirty_days |= outcome.days
        metrics.RECORDS.labels(batch.topic, "inserted").inc(outcome.inserted)
        metrics.RECORDS.labels(batch.topic, "dead_lettered").inc(len(outcome.dead))
        metrics.RECORDS.labels(batch.topic, "skipped").inc(outcome.skipped)
        observe_committed(self.routes[batch.topic].table, outcome, time.time())

    def after_insert(self, batch: Batch) -> None:
        """Called between a batch's insert and its commit (a seam for fault tests)."""

    # --- a consumer that gets nothing while records wait ------------------------------
    def _watch_assignment(self, now: float, got_records: bool = False) -> None:
        """Blocked while the consumer gets nothing, records wait and nobody commits.

        After a broker restart kafka-python's consumer can stay without partitions
        ("kafka_unassigned") or keep a stale assignment it fetches nothing from
        ("kafka_stalled"); the group's committed offsets not moving while records
        wait tells either apart from an idle sink or a peer that holds them all.
        """
        if got_records:
            self._unassigned_since = None
            self._committed_total = None
            if self.block.cause in POLLING_CAUSES:
                self._unblocked()
            return
        if self._unassigned_since is None:
            self._unassigned_since = now
            return
        waited = now - self._unassigned_since
        if waited < self.options.unassigned_grace_s or now < self._next_assignment_check:
            return
        self._next_assignment_check = now + min(10.0, self.options.unassigned_grace_s)
        waiting = self._records_waiting()
        if waiting is None:
            return
        if waiting:
            assigned = bool(self.consumer.assignment())
            cause = "kafka_stalled" if assigned else "kafka_unassigned"
            what = "nothing fetched" if assigned else "no partition assigned"
            self._blocked_by(cause, f"{what} for {waited:.0f}s while {waiting}")
            # join the group again with fresh metadata; failing that, the bound restarts us
            self._rejoin()
        elif self.block.cause in POLLING_CAUSES:
            self._unblocked()

    def _rejoin(self) -> None:
        """Leave and join the group again, forgetting (and noting) what is uncommitted."""
        self.on_partitions_revoked(list(self.buffers))
        self.consumer.unsubscribe()
        self.subscribe()

    def _records_waiting(self) -> str | None:
        """Why the group looks stuck ("" when it does not; None: ask again later)."""
        from kafka import TopicPartition

        try:
            tps = [TopicPartition(topic, p) for topic in sorted(self.routes)
                   for p in sorted(self.consumer.partitions_for_topic(topic) or ())]  # fmt: skip
            if not tps:
                return "no topic metadata can be read"
            ends = self.consumer.end_offsets(tps, timeout_ms=5000)
            begins = self.consumer.beginning_offsets(tps, timeout_ms=5000)
            committed = {tp: self.consumer.committed(tp, timeout_ms=5000) for tp in tps}
        except KafkaError as exc:
            return f"the group's offsets cannot be read ({type(exc).__name__}: {exc})"
        positions = {tp: committed[tp] if committed[tp] is not None else begins[tp] for tp in tps}
        behind = sum(max(0, ends[tp] - positions[tp]) for tp in tps)
        total = sum(positions.values())
        progressed = self._committed_total is not None and total != self._committed_total
        first_look = self._committed_total is None
        self._committed_total = total
        if behind == 0 or progressed:
            return ""
        if first_look:
            return None  # one more look tells whether a peer is committing
        return f"{behind} records wait and the group commits none"

    def _update_lag(self) -> None:
        # From our own bookkeeping and the fetched high watermark, never
        # consumer.position() or committed(): those are network calls that block
        # while the broker is away. Buffered but uncommitted records count as lag.
        for tp, buffer in self.buffers.items():
            high = self.consumer.highwater(tp)
            pending = buffer.first_uncommitted()
            if high is not None and pending is not None:
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, high - pending))

    def _maybe_rollup(self, force: bool = False) -> None:
        due = time.monotonic() - self._last_rollup >= self.options.rollup_interval_s
        if not self.dirty_days or not (due or force):
            return
        days = set(self.dirty_days)
        started = time.perf_counter()
        try:
            rollup(self.db, self.settings.clickhouse_database, days)
        except ClickHouseError as exc:
            metrics.ROLLUP_RUNS.labels("failed").inc()
            log.warning("rollup failed, will retry: %s", exc, extra=limited("sink.rollup"))
            self._last_rollup = time.monotonic()
            return
        metrics.ROLLUP_RUNS.labels("ok").inc()
        metrics.ROLLUP_SECONDS.observe(time.perf_counter() - started)
        self.dirty_days -= days
        self._last_rollup = time.monotonic()

    def _maybe_retention(self) -> None:
        interval = self.options.retention_interval_s
        if interval <= 0 or time.monotonic() - self._last_retention < interval:
            return
        self._last_retention = time.monotonic()
        try:
            result = run_retention(self.retention_db, self.settings.clickhouse_database,
                                   datetime.now(UTC),
                                   self.options.person_days, self.options.scan_days)  # fmt: skip
        except ClickHouseError as exc:
            log.warning("retention failed, will retry: %s", exc, extra=limited("sink.retention"))
            return
        for table, days in result.dropped.items():
            metrics.RETENTION_DROPPED.labels(table).inc(len(days))
        for table in ("alerts", "outcomes", "scans"):
            metrics.RETENTION_KEPT.labels(table).set(len(result.kept_unrolled.get(table, [])))
