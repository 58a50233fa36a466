"""The inputs: each hands its records to its stage and carries out the result.

Every input comes through a batch source
(:mod:`streams.worker.runtime.batch_source`), which hands its fetched records
over as :class:`SourceRecord` lists and acknowledges them after the handler;
a handler runs its work through the :class:`AgentGuard` (no offset is
committed past a record whose work failed) and updates gauges. What a record
does is decided by the stage functions, and the :class:`StageWriter`
produces and writes their results.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from functools import partial

import faust
from faust.types import TableT

from common.settings import Settings
from schemas.codec import Codec
from streams.worker import metrics
from streams.worker.adjudications import (
    ADJUDICATIONS,
    ALERTS,
    PENDING_TABLE,
    on_adjudications,
    on_alerts,
)
from streams.worker.detections import (
    SITE_CLOCK_TABLE,
    STAGE,
    BatchResult,
    DetectionContext,
    process_batch,
    stage_result,
)
from streams.worker.runtime.batch_source import BatchSource, install_batch_handler
from streams.worker.runtime.guard import AgentGuard
from streams.worker.runtime.inputs import DetectionsProgress
from streams.worker.runtime.outputs import StageWriter
from streams.worker.runtime.reference_service import ReferenceService
from streams.worker.runtime.tables import now_ms
from streams.worker.source import SourceRecord
from streams.worker.stage import StageResult
from streams.worker.throttle import ThrottledLog
from streams.worker.windows import (
    OPERATIONS,
    WINDOWS_TABLE,
    apply_operations,
    count_active,
    site_from_state,
)

log = logging.getLogger(__name__)
unmatched_log = ThrottledLog(log)

Handler = Callable[[list[SourceRecord]], Awaitable[None]]


class Handlers:
    """What each agent does with its records: run the stage, write the result, update gauges."""

    def __init__(
        self,
        writer: StageWriter,
        tables: Mapping[str, TableT],
        codec: Codec,
        reference: ReferenceService,
        detection_context: DetectionContext,
        progress: DetectionsProgress,
        outcome_tables: asyncio.Lock,
    ) -> None:
        self.writer = writer
        # The alerts and adjudications inputs (and the expiry timers) read the
        # alerts and pending tables, await their outputs' acks, then write the
        # tables: two of them interleaved would each miss the other's change
        # (an alert stored while its adjudication is held: no outcome ever).
        self.outcome_tables = outcome_tables
        self.progress = progress
        self.tables = tables
        self.decode = codec.decode
        self.reference = reference
        self.ctx = detection_context

    async def operations(self, records: list[SourceRecord]) -> None:
        """lfr.operations -> the windows table (gating reads the broadcast view instead)."""
        windows = self.tables[WINDOWS_TABLE]
        await self.writer.write(OPERATIONS.stage, apply_operations(records, windows, self.decode))
        sites = {key: site_from_state(state) for key, state in windows.items()}
        metrics.WINDOWS_ACTIVE.set(count_active(sites))

    async def detections(self, records: list[SourceRecord]) -> None:
        """Gate and match a batch once the reference data has caught up with the broker."""
        # Windows and entries already on the broker are applied before
        # gating: the topics' interleaving must not decide a match.
        epoch = self.reference.epoch
        started = time.perf_counter()
        await self.reference.sync()
        synced = time.perf_counter()
        metrics.BATCH_SIZE.observe(len(records))
        batch = process_batch(records, self.ctx)
        clock = self.tables[SITE_CLOCK_TABLE]
        result = stage_result(batch, lambda site_id: clock.get(site_id.encode()))
        processed = time.perf_counter()
        for reason, count in batch.gated.items():
            metrics.GATED.labels(reason=reason).inc(count)
        for seconds in batch.match_seconds:
            metrics.MATCH_BATCH_SECONDS.observe(seconds)
        # One wait per batch: a lost alert raises here, and the guard retries
        # the batch (or stops the worker) without acknowledging it.
        await self.writer.write(STAGE, result)
        log.debug(
            "detections batch of %d: reference sync %.1f ms, process %.1f ms, write %.1f ms",
            len(records),
            (synced - started) * 1000,
            (processed - synced) * 1000,
            (time.perf_counter() - processed) * 1000,
        )
        # Only now may the stream time let watchlists go: the batch's outputs are safe.
        # (the batch's own instants: the site_clock table may be ahead after a crash)
        self.progress.advance(records)
        self.reference.observe(batch.stream_time, epoch)
        count_detections(batch)

    async def alerts(self, records: list[SourceRecord]) -> None:
        """lfr.alerts -> the alerts table, and the outcome of an adjudication held for one."""
        async with self.outcome_tables:
            result = on_alerts(records, self.tables, now_ms(), self.decode)
            await self._outcomes(ALERTS.stage, result)

    async def adjudications(self, records: list[SourceRecord]) -> None:
        """lfr.adjudications -> an outcome, or held until its alert arrives."""
        async with self.outcome_tables:
            result = on_adjudications(records, self.tables, now_ms(), self.decode)
            await self._outcomes(ADJUDICATIONS.stage, result)

    async def _outcomes(self, stage: str, result: StageResult) -> None:
        await self.writer.write(stage, result)
        metrics.OUTCOMES.inc(len(result.outputs))
        metrics.PENDING_ADJUDICATIONS.set(len(self.tables[PENDING_TABLE]))


def count_detections(batch: BatchResult) -> None:
    """The metrics of a detections batch whose outputs are on the broker."""
    now = time.time()
    for alert, source in batch.alerts:
        metrics.ALERT_LATENCY_SECONDS.observe(max(0.0, now - source.timestamp_ms / 1000))
        metrics.EVENT_AGE_SECONDS.observe(max(0.0, now - alert["captured_at"] / 1000))
    metrics.MATCHES.inc(len(batch.scans))
    metrics.ALERTS.inc(len(batch.alerts))
    for where, count in sorted(batch.unmatched_retired.items()):
        metrics.UNMATCHED_RETIRED.labels(reason=where[2]).inc(count)
        unmatched_log.warning(
            where,
            "%d gated-in detections at site %s (deployment %s) found their watchlist "
            "already deleted (%s): not matched",
            count,
            *where,
        )


def batch_input(
    app: faust.App,
    guard: AgentGuard,
    topic: str,
    name: str,
    handle: Handler,
    *,
    max_batch: int,
    within_s: float = 0.0,
    ready: Callable[[], Awaitable[None]] | None = None,
) -> BatchSource:
    """``topic`` through a batch source: ``handle`` gets up to ``max_batch`` records at a time.

    No agent and no Faust event: the source hands over the records of each
    fetch (waiting up to ``within_s`` for a short batch to fill) and
    acknowledges a batch only once this handler returned. The first batch
    waits for ``ready`` (if given); every batch runs through the guard, so a
    failure is retried in place and a failure for good stops the worker with
    the batch unacknowledged (the source halts).
    """
    waiting = ready is not None

    async def handler(records: list[SourceRecord]) -> None:
        nonlocal waiting
        if waiting and ready is not None:
            await ready()
            log.info("%s: windows and watchlists caught up, matching starts", name)
            waiting = False
        metrics.RECORDS_IN.labels(stage=name).inc(len(records))
        await guard.run(name, records, partial(handle, records))

    return install_batch_handler(
        app, topic, handler, max_batch=max_batch, within=within_s,
        on_failure=guard.source_failed(name),
    )  # fmt: skip


LOW_VOLUME_BATCH = 100
"""Most records of lfr.operations, lfr.alerts or lfr.adjudications in one handler run
(a few a minute in steady state; a backlog after a restart goes in batches)."""


def install_agents(
    app: faust.App,
    settings: Settings,
    handlers: Handlers,
    guard: AgentGuard,
    *,
    max_batch: int,
    within_s: float,
) -> BatchSource:
    """The four inputs, each through its own batch source; returns the detections one.

    Faust's per-event agent path is used for none of them: it acknowledges an
    event whose agent raised and silently drops records fetched for a paused
    partition (after a restart, during table recovery), which stalled a
    partition's commits for good. Call before the app starts: the batch
    sources replace the app's consumer class.
    """
    batch_input(app, guard, settings.topic_operations, "operations", handlers.operations,
                max_batch=LOW_VOLUME_BATCH)  # fmt: skip
    detections = batch_input(
        app, guard, settings.topic_detections, "detections", handlers.detections,
        max_batch=max_batch, within_s=within_s, ready=handlers.reference.wait_ready,
    )  # fmt: skip
    batch_input(app, guard, settings.topic_alerts, "alerts", handlers.alerts,
                max_batch=LOW_VOLUME_BATCH)  # fmt: skip
    batch_input(app, guard, settings.topic_adjudications, "adjudications",
                handlers.adjudications, max_batch=LOW_VOLUME_BATCH)  # fmt: skip
    return detections
