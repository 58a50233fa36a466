"""The Faust app of the worker: topics, tables and the agents around the pure stages.

Built from the settings object. faust-streaming 0.15 facts decide the shape
(docs/architecture.md): at-least-once, agent concurrency 1, plain Tables, no
exactly_once, no GlobalTable; windows and watchlists are read by a separate
broadcast Service (:mod:`streams.worker.watchlist`). Every agent turns raw
Kafka bytes into records with the project codec, so a bad record becomes a
dead letter instead of a Faust decode error.

Gating reads the broadcast window view, not the ``windows`` table: the view
is caught up with lfr.operations before the first detection and before every
batch, while the table is filled by the operations agent at its own pace
(with a new consumer group a detection could otherwise be gated before its
window arrived). The table stays, keyed by site_id, as the worker's durable
per-site record of every window it validated (and for its dead letters).

Tables use ``use_partitioner=True`` with raw byte keys equal to the source
topic's key: the changelog partition is then murmur2(key), the same partition
as the source record, so tables stay co-partitioned with their input and can
be written outside an event (the orphan timer).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import faust
from faust.types import StreamT

from common.kafka_config import faust_credentials
from common.settings import Settings
from schemas.codec import Codec
from schemas.errors import SchemaError
from streams.worker import metrics
from streams.worker.deletion import DeletionPolicy
from streams.worker.detections import BatchResult, DetectionContext, process_batch
from streams.worker.errors import WorkerError
from streams.worker.faust_io import (
    Changelogs,
    Outgoing,
    Outputs,
    byte_keyed,
    detections_ownership,
    source_of,
)
from streams.worker.fetch_watchdog import FetchWatchdog
from streams.worker.guard import AgentGuard, guard_timer
from streams.worker.lag import LagGauge
from streams.worker.outcome_agents import install_outcome_agents
from streams.worker.pseudonym import Pseudonymiser
from streams.worker.segment_roll import install_segment_roller
from streams.worker.source import SourceRecord, reject
from streams.worker.throttle import ThrottledLog
from streams.worker.watchlist import WatchlistService
from streams.worker.web import HealthServer
from streams.worker.windows import (
    apply_window,
    count_active,
    parse_window,
    site_from_state,
    site_to_state,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """Worker tuning; :meth:`from_settings` takes every default from :class:`Settings`."""

    store: str = "memory://"
    max_batch: int = 500
    batch_within_s: float = 0.2
    allowed_lateness_s: float | None = None
    adjudication_hold_s: float = 300.0
    purge_on_end: bool = True
    retire_grace_s: float = 120.0
    max_payload_bytes: int = 1 << 20

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> WorkerOptions:
        """Options from the settings; an override that is ``None`` keeps the setting."""
        values: dict[str, Any] = {
            "store": settings.worker_store,
            "max_batch": settings.worker_max_batch,
            "batch_within_s": settings.worker_batch_within_s,
            "allowed_lateness_s": settings.allowed_lateness_s,
            "adjudication_hold_s": settings.adjudication_hold_s,
            "purge_on_end": settings.watchlist_purge_on_end,
            "retire_grace_s": settings.watchlist_retire_grace_s,
            "max_payload_bytes": settings.max_payload_bytes,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


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


# two checks this far apart with nothing moving mean the records are lost to the agent
WATCHDOG_INTERVAL_S = 10.0
SESSION_TIMEOUT_S = 10.0
"""A SIGKILLed worker's partitions move after this (Faust's default, 60 s, stalled them)."""
HEARTBEAT_INTERVAL_S = 3.0
"""A third of the session timeout, as Kafka advises."""
LAG_INTERVAL_S = 5.0
PRODUCER_BATCH_BYTES = 256 * 1024
"""Largest producer batch: a whole detections batch per partition, well under 1 MB requests."""


def build_worker(settings: Settings, options: WorkerOptions | None = None) -> WorkerRuntime:
    """Create the Faust app, its tables and agents, and the services beside it."""
    options = options or WorkerOptions.from_settings(settings)
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
        broker_session_timeout=SESSION_TIMEOUT_S,
        broker_heartbeat_interval=HEARTBEAT_INTERVAL_S,
        # static membership: a restart under the same id keeps the assignment
        consumer_group_instance_id=settings.worker_group_instance_id,
        producer_acks=-1,
        # A detection is ~1.1 KiB: let one fetch carry several batches.
        consumer_max_fetch_size=8 * 1024 * 1024,
        # A detections batch goes out as one producer batch per partition
        # (Outputs.send_batch): 500 scans are ~40 KiB, over aiokafka's 16 KiB.
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
        # Standbys would put other workers' partitions into the same in-memory
        # tables, and the orphan timer must only expire its own partitions.
        table_standby_replicas=0,
        # A stop or rebalance must not wait for records that will never be
        # acknowledged (pinned by the agent guard after a failure, or
        # cancelled half done): they are simply not committed.
        stream_wait_empty=False,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        autodiscover=False,
    )
    codec = Codec(max_payload_bytes=options.max_payload_bytes)
    lateness = options.allowed_lateness_s
    lateness_ms = None if lateness is None else int(lateness * 1000)
    watchlist = WatchlistService(
        settings,
        codec=codec,
        policy=DeletionPolicy(grace_s=options.retire_grace_s, lateness_ms=lateness_ms),
        purge_on_end=options.purge_on_end,
        ownership=detections_ownership(app, settings.topic_detections, settings.partitions),
    )
    guard = AgentGuard()
    health = HealthServer(
        settings.worker_metrics_port, ready=lambda: watchlist.ready and not guard.failed
    )
    changelogs = Changelogs(app)
    outputs = Outputs(app, settings, codec)
    table_args: dict[str, Any] = {
        "partitions": settings.partitions,
        "use_partitioner": True,
        "key_type": bytes,
    }
    windows = byte_keyed(app.Table("windows", **table_args))
    site_clock = byte_keyed(app.Table("site_clock", **table_args))
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes}
    detections_topic = app.topic(settings.topic_detections, **raw)
    operations_topic = app.topic(settings.topic_operations, **raw)
    reference = watchlist.reference
    ctx = DetectionContext(
        windows_of=reference.windows_of,
        watchlist=reference.snapshot,
        high_water_of=lambda site: site_clock.get(site.encode()),
        pseudonymiser=Pseudonymiser(settings.require_pseudonym_key()),
        allowed_lateness_ms=lateness_ms,
        is_deleted=reference.is_deleted,
        deleted_by=reference.deleted_by,
        decode=codec.decode,
    )

    @app.agent(operations_topic, name="operations", concurrency=1)
    async def operations(stream: StreamT) -> None:
        async for event in stream.events():
            metrics.RECORDS_IN.labels(stage="operations").inc()
            await guard.run("operations", [event], partial(_operation, event))

    async def _operation(event: Any) -> None:
        record = source_of(event)
        if record.value is None:
            # A compaction tombstone for a site: the table keeps the
            # site's windows for audit, so there is nothing to undo.
            log.info("operations tombstone for %s ignored", record.key_text)
            return
        try:
            window = parse_window(codec.decode("OperationWindow", record.value), record.key_text)
        except (SchemaError, WorkerError) as exc:
            stage = "worker.operations"
            letter = reject(record, exc, stage, biometric=False)
            await asyncio.gather(*await outputs.dead_letters(stage, [letter]))
            return
        key = window.site_id.encode()
        state = site_to_state(apply_window(site_from_state(windows.get(key)), window))
        await changelogs.put(windows, key, state)
        sites = {k: site_from_state(v) for k, v in windows.items()}
        metrics.WINDOWS_ACTIVE.set(count_active(sites))
        log.info("window %s at %s is %s", window.deployment_id, window.site_id, window.status)

    @app.agent(detections_topic, name="detections", concurrency=1)
    async def detections(stream: StreamT) -> None:
        await watchlist.wait_ready()
        log.info("detections: windows and watchlists caught up, matching starts")
        # take_events is on faust.Stream, not declared on StreamT
        batches = cast(faust.Stream, stream).take_events
        async for events in batches(options.max_batch, within=options.batch_within_s):
            await guard.run("detections", events, partial(_detections, events))

    async def _detections(events: Sequence[Any]) -> None:
        # Windows and entries already on the broker are applied before
        # gating: the topics' interleaving must not decide a match.
        epoch = watchlist.epoch
        synced = time.perf_counter()
        await watchlist.sync()
        log.debug("detections: reference sync took %.1f ms", (time.perf_counter() - synced) * 1000)
        await _detections_batch([source_of(e) for e in events], epoch)

    async def _detections_batch(records: list[SourceRecord], epoch: int) -> None:
        metrics.RECORDS_IN.labels(stage="detections").inc(len(records))
        metrics.BATCH_SIZE.observe(len(records))
        started = time.perf_counter()
        result = process_batch(records, ctx)
        processed = time.perf_counter()
        for site_id, newest in result.high_water.items():
            key = site_id.encode()
            if (site_clock.get(key) or newest - 1) < newest:
                await changelogs.put(site_clock, key, newest)
        for reason, count in result.gated.items():
            metrics.GATED.labels(reason=reason).inc(count)
        for seconds in result.match_seconds:
            metrics.MATCH_BATCH_SECONDS.observe(seconds)
        scans, alerts = outputs.scans, outputs.alerts
        outgoing: list[Outgoing] = [
            (scans, scan["site_id"], "Scan", scan, timestamp_ms)
            for scan, timestamp_ms in zip(result.scans, result.scan_timestamps_ms, strict=True)
        ]
        outgoing += [
            (alerts, alert["alert_id"], "Alert", alert, source.timestamp_ms)
            for alert, source in result.alerts
        ]
        futures = await outputs.send_batch(outgoing)
        futures += await outputs.dead_letters("worker.detections", result.dead_letters)
        # One wait per batch: a lost alert raises here, and the guard retries
        # the batch (or stops the worker) without acknowledging it.
        queued = time.perf_counter()
        await asyncio.gather(*futures)
        log.debug(
            "detections batch of %d: process %.1f ms, queue %.1f ms, acks %.1f ms",
            len(records),
            (processed - started) * 1000,
            (queued - processed) * 1000,
            (time.perf_counter() - queued) * 1000,
        )
        # Only now may the stream time let watchlists go: the batch's outputs are safe.
        # (the batch's own instants: the site_clock table may be ahead after a crash)
        watchlist.observe(result.stream_time, epoch)
        _count(result)

    install_outcome_agents(
        app, settings, outputs, codec, table_args, options.adjudication_hold_s, guard
    )
    install_segment_roller(app, settings)
    inputs = (settings.topic_detections, settings.topic_operations, settings.topic_adjudications,
              settings.topic_alerts)  # fmt: skip
    watchdog = FetchWatchdog(app, inputs)
    lag = LagGauge(app, inputs)

    @app.timer(interval=WATCHDOG_INTERVAL_S)
    async def fetch_watchdog() -> None:
        await guard_timer("fetch_watchdog", watchdog.tick)

    async def _lag() -> None:
        lag.update()

    @app.timer(interval=LAG_INTERVAL_S)
    async def consumer_lag() -> None:
        await guard_timer("consumer_lag", _lag)

    return WorkerRuntime(app=app, watchlist=watchlist, health=health)


unmatched_log = ThrottledLog(log)


def _count(result: BatchResult) -> None:
    now = time.time()
    for alert, source in result.alerts:
        metrics.ALERT_LATENCY_SECONDS.observe(max(0.0, now - source.timestamp_ms / 1000))
        metrics.EVENT_AGE_SECONDS.observe(max(0.0, now - alert["captured_at"] / 1000))
    metrics.MATCHES.inc(len(result.scans))
    metrics.ALERTS.inc(len(result.alerts))
    metrics.RECORDS_OUT.labels(stage="scans").inc(len(result.scans))
    metrics.RECORDS_OUT.labels(stage="alerts").inc(len(result.alerts))
    for where, count in sorted(result.unmatched_retired.items()):
        metrics.UNMATCHED_RETIRED.labels(reason=where[2]).inc(count)
        unmatched_log.warning(
            where,
            "%d gated-in detections at site %s (deployment %s) found their watchlist "
            "already deleted (%s): not matched",
            count,
            *where,
        )
