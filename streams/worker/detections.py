"""The detections stage as a pure function of one batch.

admit (decode, batch validation: :data:`DETECTIONS`) -> gate -> one matrix
product per watchlist -> Scan and Alert records, plus dead letters. The
detections input's handler is a thin loop around :func:`process_batch`;
everything here runs without a broker.

Matching is event time throughout: each face is compared with the watchlist
rows valid when it was captured, and a gated-in face whose watchlist was
already destroyed (retired and deleted) is counted, not dead-lettered.

Templates live only inside this function: each event's template is taken out
of its decoded dict as soon as it is read, the batch's query matrix is
overwritten before returning, and no output carries a template.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from schemas.batch_validation import check_detections
from schemas.codec import decode_millis
from schemas.errors import UndecodableError
from schemas.templates import WIRE_DTYPE
from streams.topics import BY_SHORT
from streams.worker.errors import DimensionMismatchError, UnknownSiteError, UnknownWatchlistError
from streams.worker.gating import GateReason, gate
from streams.worker.instants import to_millis
from streams.worker.matching import match_batch
from streams.worker.pseudonym import Pseudonymiser
from streams.worker.records import build_alert, build_scan
from streams.worker.snapshot import WatchlistSnapshot, normalise
from streams.worker.source import Input, KeyRule, SourceRecord, admit_batch, reject
from streams.worker.stage import ALERTS, SCANS, Output, StageResult, TableChange
from streams.worker.windows import OperationWindow

STAGE = "worker.detections"
SITE_CLOCK_TABLE = "site_clock"
"""The table of the newest captured_at per site (allowed lateness), keyed by site_id bytes."""
DETECTIONS = Input(
    BY_SHORT["detections"],
    STAGE,
    key=KeyRule.ANY,
    validate=False,
    batch_check=check_detections,
    null_value=UndecodableError,
)
"""Detections are validated a batch at a time (one matrix for the templates); a record's
key is not checked (the partitioner routes by it), and a null value is undecodable."""


@dataclass(slots=True)
class BatchResult:
    """Everything one batch produces; the agent sends it and updates metrics."""

    scans: list[dict[str, Any]] = field(default_factory=list)
    scan_timestamps_ms: list[int] = field(default_factory=list)
    """Kafka timestamp of each scan's detection, so the scan carries it on (latency)."""
    alerts: list[tuple[dict[str, Any], SourceRecord]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    gated: Counter[str] = field(default_factory=Counter)
    high_water: dict[str, int] = field(default_factory=dict)
    """Newest captured_at per site including the stored clock (for allowed lateness)."""
    stream_time: dict[str, int] = field(default_factory=dict)
    """Newest captured_at per known site among this batch's detections only."""
    match_seconds: list[float] = field(default_factory=list)
    unmatched_retired: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """Gated-in faces whose watchlist was already deleted, by (site_id, deployment_id, rule)."""


@dataclass(slots=True)
class _Passed:
    record: SourceRecord
    event: dict[str, Any]
    template: bytes
    window: OperationWindow
    captured_at_ms: int


@dataclass(frozen=True, slots=True)
class DetectionContext:
    """What the detections stage reads besides the batch itself."""

    windows_of: Callable[[str], Iterable[OperationWindow]]
    watchlist: Callable[[str], WatchlistSnapshot | None]
    high_water_of: Callable[[str], int | None]
    pseudonymiser: Pseudonymiser
    allowed_lateness_ms: int | None = None
    now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000
    is_deleted: Callable[[str], bool] = lambda _watchlist_id: False
    deleted_by: Callable[[str], str | None] = lambda _watchlist_id: None
    """The rule that deleted a watchlist (see :class:`streams.worker.deletion.DeletionRule`)."""
    decode: Callable[[str, bytes], dict[str, Any]] = decode_millis
    """Decodes with timestamps as epoch milliseconds, the unit gating compares."""


def process_batch(records: Iterable[SourceRecord], ctx: DetectionContext) -> BatchResult:
    """Gate and match one batch of lfr.detections records (see the module doc)."""
    result = BatchResult()
    admitted, result.dead_letters = admit_batch(records, DETECTIONS, ctx.decode)
    passed: dict[str, list[_Passed]] = {}
    site_windows: dict[str, list[OperationWindow]] = {}
    for item in admitted:
        event = item.value
        assert event is not None  # noqa: S101 -- DETECTIONS admits no tombstones
        passing = _gate_one(item.record, event, ctx, result, site_windows)
        if passing is not None:
            passed.setdefault(passing.window.watchlist_id, []).append(passing)
    for watchlist_id in sorted(passed):
        _match_group(watchlist_id, passed[watchlist_id], ctx, result)
    return result


def _gate_one(
    record: SourceRecord,
    event: dict[str, Any],
    ctx: DetectionContext,
    result: BatchResult,
    site_windows: dict[str, list[OperationWindow]],
) -> _Passed | None:
    template: bytes = event.pop("template")
    site_id = event["site_id"]
    # kept in milliseconds: the scan and the alert read it again
    captured_at_ms = event["captured_at"] = to_millis(event["captured_at"])
    high_water = result.high_water.get(site_id, ctx.high_water_of(site_id))
    windows = site_windows.get(site_id)
    if windows is None:
        # the windows do not change during a batch: read each site's once
        windows = site_windows[site_id] = list(ctx.windows_of(site_id))
    decision = gate(
        camera_id=event["camera_id"],
        captured_at_ms=captured_at_ms,
        windows=windows,
        site_high_water_ms=high_water,
        allowed_lateness_ms=ctx.allowed_lateness_ms,
    )
    if decision.reason is not GateReason.UNKNOWN_SITE:
        result.high_water[site_id] = max(captured_at_ms, high_water or captured_at_ms)
        newest = result.stream_time.get(site_id, captured_at_ms)
        result.stream_time[site_id] = max(newest, captured_at_ms)
    if decision.window is None:
        reason = decision.reason or GateReason.OUTSIDE_WINDOW
        result.gated[reason.value] += 1
        if reason is GateReason.UNKNOWN_SITE:
            error = UnknownSiteError("no operation window has ever named this site")
            result.dead_letters.append(reject(record, error, STAGE, biometric=True))
        return None
    return _Passed(record, event, template, decision.window, captured_at_ms)


def _match_group(
    watchlist_id: str, items: list[_Passed], ctx: DetectionContext, result: BatchResult
) -> None:
    snapshot = ctx.watchlist(watchlist_id)
    if snapshot is None and ctx.is_deleted(watchlist_id):
        rule = str(ctx.deleted_by(watchlist_id) or "deleted")
        for item in items:
            where = (item.event["site_id"], item.window.deployment_id, rule)
            result.unmatched_retired[where] += 1
            result.scans.append(build_scan(item.event, item.window, matched=False))
            result.scan_timestamps_ms.append(item.record.timestamp_ms)
            item.template = b""
        return
    if snapshot is None:
        error = UnknownWatchlistError(f"watchlist {watchlist_id!r} is not held by this worker")
        for item in items:
            result.dead_letters.append(reject(item.record, error, STAGE, biometric=True))
            result.scans.append(build_scan(item.event, item.window, matched=False))
            result.scan_timestamps_ms.append(item.record.timestamp_ms)
        return
    if len(snapshot) == 0:
        for item in items:
            result.scans.append(build_scan(item.event, item.window, matched=False))
            result.scan_timestamps_ms.append(item.record.timestamp_ms)
        return
    usable = _usable(items, snapshot, result)
    if not usable:
        return
    started = time.perf_counter()
    joined = b"".join(item.template for item in usable)
    queries = normalise(np.frombuffer(joined, dtype=WIRE_DTYPE).reshape(len(usable), -1))
    del joined
    captured = np.array([item.captured_at_ms for item in usable], dtype=np.int64)
    thresholds = {item.window.match_threshold for item in usable}
    best = {t: match_batch(queries, snapshot, t, captured) for t in sorted(thresholds)}
    queries.fill(0.0)
    result.match_seconds.append(time.perf_counter() - started)
    alerted_at_ms = ctx.now_ms()
    for i, item in enumerate(usable):
        item.template = b""
        match = best[item.window.match_threshold][i]
        result.scans.append(build_scan(item.event, item.window, matched=match is not None))
        result.scan_timestamps_ms.append(item.record.timestamp_ms)
        if match is None:
            continue
        alert = build_alert(
            item.event,
            item.window,
            match,
            subject_ref=ctx.pseudonymiser.subject_ref(match.subject_id),
            watchlist_version=snapshot.version_at(item.captured_at_ms),
            alerted_at_ms=alerted_at_ms,
        )
        result.alerts.append((alert, item.record))


def _usable(
    items: list[_Passed], snapshot: WatchlistSnapshot, result: BatchResult
) -> list[_Passed]:
    size = (snapshot.dimension or 0) * WIRE_DTYPE.itemsize
    usable = []
    for item in items:
        if len(item.template) != size or item.event["template_model"] != snapshot.template_model:
            error = DimensionMismatchError(
                f"template of {len(item.template)} bytes / model "
                f"{item.event['template_model']!r} against watchlist "
                f"{snapshot.watchlist_id!r} of dimension {snapshot.dimension}"
            )
            result.dead_letters.append(reject(item.record, error, STAGE, biometric=True))
            item.template = b""
            continue
        usable.append(item)
    return usable


def stage_result(result: BatchResult, stored_clock: Callable[[str], int | None]) -> StageResult:
    """A batch's scans, alerts, dead letters and ``site_clock`` advances, for the runtime.

    Scans and alerts carry their detection's Kafka timestamp on, so latency
    downstream is measured from the detection's publication.
    """
    outputs = [
        Output(SCANS, scan, timestamp_ms)
        for scan, timestamp_ms in zip(result.scans, result.scan_timestamps_ms, strict=True)
    ]
    outputs += [Output(ALERTS, alert, source.timestamp_ms) for alert, source in result.alerts]
    changes = []
    for site_id, newest in result.high_water.items():
        stored = stored_clock(site_id)
        if stored is None or stored < newest:
            changes.append(TableChange(SITE_CLOCK_TABLE, site_id.encode(), newest))
    return StageResult(outputs, list(result.dead_letters), changes)
