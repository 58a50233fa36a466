"""The Faust app of the worker: topics, tables and four thin agents.

Built from the settings object. faust-streaming 0.15 facts decide the shape
(DESIGN.md): at-least-once, agent concurrency 1, plain Tables, no
exactly_once, no GlobalTable; the watchlist is a separate broadcast Service.
Every agent turns raw Kafka bytes into records with the project codec, so a
bad record becomes a dead letter instead of a Faust decode error.

Tables use ``use_partitioner=True`` with raw byte keys equal to the source
topic's key: the changelog partition is then murmur2(key), the same partition
as the source record, so tables stay co-partitioned with their input and can
be written outside an event (the orphan timer).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any, cast

import faust
from faust.types import EventT, StreamT, TableT

from schemas.codec import decode, encode
from schemas.errors import SchemaError
from schemas.validation import validate
from streams.settings import Settings
from streams.worker import metrics
from streams.worker.adjudications import (
    is_expired,
    join,
    orphan_dead_letter,
    pending_entry,
    should_replace_pending,
)
from streams.worker.detections import DetectionContext, process_batch
from streams.worker.errors import InvalidRecordError, InvalidWindowError, WorkerError
from streams.worker.instants import to_millis
from streams.worker.kafka_config import faust_credentials
from streams.worker.pseudonym import Pseudonymiser
from streams.worker.records import alert_to_state
from streams.worker.source import SourceRecord, reject
from streams.worker.watchlist import WatchlistService
from streams.worker.web import HealthServer
from streams.worker.windows import (
    OperationWindow,
    apply_window,
    count_active,
    site_from_state,
    site_to_state,
    window_from_record,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """Worker tuning beyond :class:`Settings` (set by ``lfr worker`` flags)."""

    store: str = "memory://"
    max_batch: int = 500
    batch_within_s: float = 0.2
    allowed_lateness_s: float | None = None
    adjudication_hold_s: float = 300.0
    purge_on_end: bool = False


@dataclass(slots=True)
class WorkerRuntime:
    """The Faust app and the services that run beside it."""

    app: faust.App
    watchlist: WatchlistService
    health: HealthServer

    @property
    def services(self) -> list[Any]:
        """Services to hand to :class:`faust.Worker` next to the app."""
        return [self.watchlist, self.health]


def _source(event: EventT) -> SourceRecord:
    message = event.message
    return SourceRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        timestamp_ms=int(message.timestamp * 1000),
    )


class _Outputs:
    """Encodes records and hands them to the producer without waiting per record."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.app = app
        self.scans = settings.topic_scans
        self.alerts = settings.topic_alerts
        self.outcomes = settings.topic_outcomes
        self.dlq = settings.topic_dlq

    async def send(self, topic: str, key: str, name: str, record: Any) -> Awaitable:
        """Queue one record; the returned future resolves when the broker has it.

        Straight to the app's producer rather than ``Topic.send``: Faust's
        per-message bookkeeping costs more than the whole match, and the
        consumer flushes this same producer before it commits offsets, so
        at-least-once holds.
        """
        future: Awaitable = await self.app.producer.send(
            topic, key.encode(), encode(name, record), None, None, None
        )
        return future

    async def dead_letters(self, stage: str, letters: Iterable[dict[str, Any]]) -> list[Awaitable]:
        """Queue dead letters (key: source topic) and count them."""
        futures = []
        for letter in letters:
            metrics.DEAD_LETTERS.labels(stage=stage, reason=letter["reason"]).inc()
            futures.append(await self.send(self.dlq, letter["source_topic"], "DeadLetter", letter))
            log.warning(
                "dead letter: %s[%d]@%d stage=%s reason=%s",
                letter["source_topic"],
                letter["source_partition"],
                letter["source_offset"],
                stage,
                letter["reason"],
            )
        return futures


class _SiteWindows:
    """Parsed windows per site, re-parsed only when the table value changes."""

    def __init__(self, table: TableT) -> None:
        self.table = table
        self._cache: dict[str, tuple[Any, list[OperationWindow]]] = {}

    def __call__(self, site_id: str) -> list[OperationWindow]:
        state = self.table.get(site_id.encode())
        cached = self._cache.get(site_id)
        if cached is not None and cached[0] is state:
            return cached[1]
        windows = list(site_from_state(state).values())
        self._cache[site_id] = (state, windows)
        return windows


def _byte_keyed(table: TableT) -> TableT:
    """Make the changelog key the raw source key bytes.

    faust 0.15 derives a Table's key serializer from ``key_type`` ("json" for
    anything but a Record) and ignores ``schema`` for it, so a bytes key would
    be written as a JSON string and murmur2 would pick another partition than
    the source record's. The changelog topic is created lazily from this
    attribute, so setting it before the first access is enough.
    """
    collection = cast(Any, table)  # the attributes live on faust.Table, not TableT
    collection.key_serializer = "raw"
    collection.value_serializer = "json"
    return table


def build_worker(settings: Settings, options: WorkerOptions | None = None) -> WorkerRuntime:
    """Create the Faust app, its tables and agents, and the services beside it."""
    options = options or WorkerOptions()
    datadir = settings.state_dir / "faust"
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers],
        broker_credentials=faust_credentials(settings),
        store=options.store,
        datadir=str(datadir / "{conf.name}"),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.kafka_replication_factor,
        processing_guarantee="at_least_once",
        producer_acks=-1,
        # A detection is ~1.1 KiB: let one fetch carry several batches.
        consumer_max_fetch_size=8 * 1024 * 1024,
        # Standbys would put other workers' partitions into the same in-memory
        # tables, and the orphan timer must only expire its own partitions.
        table_standby_replicas=0,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        autodiscover=False,
    )
    watchlist = WatchlistService(settings, purge_on_end=options.purge_on_end)
    health = HealthServer(settings.worker_metrics_port, ready=lambda: watchlist.ready)
    outputs = _Outputs(app, settings)
    table_args: dict[str, Any] = {
        "partitions": settings.partitions,
        "use_partitioner": True,
        "key_type": bytes,
    }
    windows = _byte_keyed(app.Table("windows", **table_args))
    site_clock = _byte_keyed(app.Table("site_clock", **table_args))
    alerts_table = _byte_keyed(app.Table("alerts", **table_args))
    pending = _byte_keyed(app.Table("pending_adjudications", **table_args))

    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes}
    detections_topic = app.topic(settings.topic_detections, **raw)
    operations_topic = app.topic(settings.topic_operations, **raw)
    adjudications_topic = app.topic(settings.topic_adjudications, **raw)
    alerts_topic = app.topic(settings.topic_alerts, **raw)

    lateness = options.allowed_lateness_s
    ctx = DetectionContext(
        windows_of=_SiteWindows(windows),
        watchlist=watchlist.snapshot,
        high_water_of=lambda site: site_clock.get(site.encode()),
        pseudonymiser=Pseudonymiser(settings.pseudonym_key),
        allowed_lateness_ms=None if lateness is None else int(lateness * 1000),
    )

    @app.agent(operations_topic, name="operations", concurrency=1)
    async def operations(stream: StreamT) -> None:
        async for event in stream.events():
            record = _source(event)
            metrics.RECORDS_IN.labels(stage="operations").inc()
            if record.value is None:
                # A compaction tombstone for a site: the table keeps the
                # site's windows for audit, so there is nothing to undo.
                log.info("operations tombstone for %s ignored", record.key_text)
                continue
            try:
                decoded = decode("OperationWindow", record.value)
                validate("OperationWindow", decoded)
                window = window_from_record(decoded)
                if record.key_text != window.site_id:
                    raise InvalidWindowError("the record key is not the window's site_id")
            except (SchemaError, WorkerError) as exc:
                stage = "worker.operations"
                letter = reject(record, exc, stage, biometric=False)
                await asyncio.gather(*await outputs.dead_letters(stage, [letter]))
                continue
            key = window.site_id.encode()
            windows[key] = site_to_state(apply_window(site_from_state(windows.get(key)), window))
            sites = {k: site_from_state(v) for k, v in windows.items()}
            metrics.WINDOWS_ACTIVE.set(count_active(sites))
            log.info("window %s at %s is %s", window.deployment_id, window.site_id, window.status)

    @app.agent(detections_topic, name="detections", concurrency=1)
    async def detections(stream: StreamT) -> None:
        await watchlist.wait_ready()
        log.info("detections: watchlist ready, matching starts")
        # take_events is on faust.Stream, not declared on StreamT
        batches = cast(faust.Stream, stream).take_events
        async for events in batches(options.max_batch, within=options.batch_within_s):
            await _detections_batch([_source(e) for e in events])

    async def _detections_batch(records: list[SourceRecord]) -> None:
        metrics.RECORDS_IN.labels(stage="detections").inc(len(records))
        metrics.BATCH_SIZE.observe(len(records))
        started = time.perf_counter()
        result = process_batch(records, ctx)
        processed = time.perf_counter()
        for site_id, newest in result.high_water.items():
            key = site_id.encode()
            if (site_clock.get(key) or newest - 1) < newest:
                site_clock[key] = newest
        for reason, count in result.gated.items():
            metrics.GATED.labels(reason=reason).inc(count)
        for seconds in result.match_seconds:
            metrics.MATCH_BATCH_SECONDS.observe(seconds)
        futures = [
            await outputs.send(outputs.scans, scan["site_id"], "Scan", scan)
            for scan in result.scans
        ]
        futures += [
            await outputs.send(outputs.alerts, alert["alert_id"], "Alert", alert)
            for alert, _ in result.alerts
        ]
        futures += await outputs.dead_letters("worker.detections", result.dead_letters)
        # One wait per batch: a lost alert crashes the agent before its
        # offsets are acknowledged, so the batch is processed again.
        queued = time.perf_counter()
        await asyncio.gather(*futures)
        log.debug(
            "detections batch of %d: process %.1f ms, queue %.1f ms, acks %.1f ms",
            len(records),
            (processed - started) * 1000,
            (queued - processed) * 1000,
            (time.perf_counter() - queued) * 1000,
        )
        now = time.time()
        for alert, source in result.alerts:
            metrics.ALERT_LATENCY_SECONDS.observe(max(0.0, now - source.timestamp_ms / 1000))
            metrics.EVENT_AGE_SECONDS.observe(max(0.0, now - alert["captured_at"] / 1000))
        metrics.MATCHES.inc(len(result.scans))
        metrics.ALERTS.inc(len(result.alerts))
        metrics.RECORDS_OUT.labels(stage="scans").inc(len(result.scans))
        metrics.RECORDS_OUT.labels(stage="alerts").inc(len(result.alerts))

    @app.agent(alerts_topic, name="alerts", concurrency=1)
    async def alerts(stream: StreamT) -> None:
        async for event in stream.events():
            record = _source(event)
            metrics.RECORDS_IN.labels(stage="alerts").inc()
            try:
                if record.value is None or record.key is None:
                    raise InvalidRecordError("an alert without key or value")
                alert = decode("Alert", record.value)
            except (SchemaError, WorkerError) as exc:
                letter = reject(record, exc, "worker.alerts", biometric=False)
                await asyncio.gather(*await outputs.dead_letters("worker.alerts", [letter]))
                continue
            key = record.key
            state = alerts_table.get(key)
            if state is None:
                # The first copy wins: a redelivered alert has a later alerted_at.
                state = alert_to_state(alert)
                alerts_table[key] = state
            held = pending.get(key)
            if held is not None:
                adjudication = decode("Adjudication", base64.b64decode(held["value"]))
                await _emit_outcome(key, adjudication, state)
                del pending[key]
                metrics.PENDING_ADJUDICATIONS.set(len(pending))

    async def _emit_outcome(key: bytes, adjudication: dict, state: dict | None) -> bool:
        result = join(adjudication, state)
        if result.outcome is None:
            return not result.hold
        await asyncio.gather(
            await outputs.send(
                outputs.outcomes, result.outcome["alert_id"], "Outcome", result.outcome
            )
        )
        alerts_table[key] = result.alert_state
        metrics.OUTCOMES.inc()
        metrics.RECORDS_OUT.labels(stage="outcomes").inc()
        return True

    @app.agent(adjudications_topic, name="adjudications", concurrency=1)
    async def adjudications(stream: StreamT) -> None:
        async for event in stream.events():
            record = _source(event)
            metrics.RECORDS_IN.labels(stage="adjudications").inc()
            stage = "worker.adjudications"
            try:
                if record.value is None:
                    raise InvalidRecordError("a null adjudication")
                adjudication = decode("Adjudication", record.value)
                validate("Adjudication", adjudication)
                if record.key_text != adjudication["alert_id"]:
                    raise InvalidRecordError("the record key is not the alert_id")
            except (SchemaError, WorkerError) as exc:
                letter = reject(record, exc, stage, biometric=False)
                await asyncio.gather(*await outputs.dead_letters(stage, [letter]))
                continue
            key = record.key or b""
            if await _emit_outcome(key, adjudication, alerts_table.get(key)):
                continue
            decided = to_millis(adjudication["decided_at"])
            if should_replace_pending(pending.get(key), decided):
                pending[key] = pending_entry(record, decided, time.time_ns() // 1_000_000)
                metrics.PENDING_ADJUDICATIONS.set(len(pending))

    hold_ms = int(options.adjudication_hold_s * 1000)

    @app.timer(interval=max(0.5, min(options.adjudication_hold_s / 4, 10.0)))
    async def expire_orphans() -> None:
        now_ms = time.time_ns() // 1_000_000
        expired = [(k, v) for k, v in pending.items() if is_expired(v, now_ms, hold_ms)]
        if not expired:
            return
        letters = [orphan_dead_letter(entry, hold_ms) for _, entry in expired]
        await asyncio.gather(*await outputs.dead_letters("worker.adjudications", letters))
        for key, _ in expired:
            del pending[key]
        metrics.PENDING_ADJUDICATIONS.set(len(pending))

    return WorkerRuntime(app=app, watchlist=watchlist, health=health)
