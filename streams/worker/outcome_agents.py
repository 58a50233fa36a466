"""The alert/adjudication join as Faust agents: lfr.alerts + lfr.adjudications -> lfr.outcomes.

Thin loops around :mod:`streams.worker.adjudications`. Both topics are keyed
by alert_id and co-partitioned, so one worker holds an alert and its
verdict; an adjudication that arrives first waits in a table, and the timer
dead-letters it after the hold time. Alerts leave their table at the bound
of :mod:`streams.worker.expiry`; both tables' changelogs are created with
the compacted-personal lifecycle of :mod:`streams.topics`.
"""

from __future__ import annotations

import asyncio
import base64
import time
from functools import partial
from typing import Any

import faust
from faust.types import StreamT

from common.settings import Settings
from schemas.codec import Codec
from schemas.errors import SchemaError
from schemas.validation import validate
from streams.topics import changelog_config
from streams.worker import metrics
from streams.worker.adjudications import (
    is_expired,
    join,
    orphan_dead_letter,
    pending_entry,
    should_replace_pending,
)
from streams.worker.errors import InvalidRecordError, WorkerError
from streams.worker.expiry import AlertExpiry, stamp_outcome, stamp_stored, sweep_interval_s
from streams.worker.faust_io import Changelogs, Outputs, byte_keyed, source_of
from streams.worker.guard import AgentGuard, guard_timer
from streams.worker.instants import to_millis
from streams.worker.records import alert_to_state
from streams.worker.source import reject


def install_outcome_agents(
    app: faust.App,
    settings: Settings,
    outputs: Outputs,
    codec: Codec,
    table_args: dict[str, Any],
    hold_s: float,
    guard: AgentGuard,
) -> None:
    """Add the alerts and adjudications agents, their tables and the orphan timer to ``app``.

    Each record's work runs through ``guard`` (no offset committed past a
    record whose work failed) and every table write through
    :class:`Changelogs` (no write before its changelog's metadata is known).
    """
    changelogs = Changelogs(app)
    personal = {**table_args, "extra_topic_configs": changelog_config(settings)}
    alerts_table = byte_keyed(app.Table("alerts", **personal))
    pending = byte_keyed(app.Table("pending_adjudications", **personal))
    expiry = AlertExpiry(
        ttl_ms=settings.alert_table_ttl_s * 1000,
        keep_after_outcome_ms=settings.alert_table_keep_after_outcome_s * 1000,
    )
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes}
    adjudications_topic = app.topic(settings.topic_adjudications, **raw)
    alerts_topic = app.topic(settings.topic_alerts, **raw)

    @app.agent(alerts_topic, name="alerts", concurrency=1)
    async def alerts(stream: StreamT) -> None:
        async for event in stream.events():
            metrics.RECORDS_IN.labels(stage="alerts").inc()
            await guard.run("alerts", [event], partial(_alert, event))

    async def _alert(event: Any) -> None:
        record = source_of(event)
        try:
            if record.value is None or record.key is None:
                raise InvalidRecordError("an alert without key or value")
            alert = codec.decode("Alert", record.value)
        except (SchemaError, WorkerError) as exc:
            letter = reject(record, exc, "worker.alerts", biometric=False)
            await asyncio.gather(*await outputs.dead_letters("worker.alerts", [letter]))
            return
        key = record.key
        state = alerts_table.get(key)
        if state is None:
            # The first copy wins: a redelivered alert has a later alerted_at.
            state = stamp_stored(alert_to_state(alert), _now_ms())
            await changelogs.put(alerts_table, key, state)
        held = pending.get(key)
        if held is not None:
            adjudication = codec.decode("Adjudication", base64.b64decode(held["value"]))
            await _emit_outcome(key, adjudication, state)
            await changelogs.delete(pending, key)
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
        state = stamp_outcome(dict(result.alert_state or {}), _now_ms())
        await changelogs.put(alerts_table, key, state)
        metrics.OUTCOMES.inc()
        metrics.RECORDS_OUT.labels(stage="outcomes").inc()
        return True

    @app.agent(adjudications_topic, name="adjudications", concurrency=1)
    async def adjudications(stream: StreamT) -> None:
        async for event in stream.events():
            metrics.RECORDS_IN.labels(stage="adjudications").inc()
            await guard.run("adjudications", [event], partial(_adjudication, event))

    async def _adjudication(event: Any) -> None:
        record = source_of(event)
        stage = "worker.adjudications"
        try:
            if record.value is None:
                raise InvalidRecordError("a null adjudication")
            adjudication = codec.decode("Adjudication", record.value)
            validate("Adjudication", adjudication)
            if record.key_text != adjudication["alert_id"]:
                raise InvalidRecordError("the record key is not the alert_id")
        except (SchemaError, WorkerError) as exc:
            letter = reject(record, exc, stage, biometric=False)
            await asyncio.gather(*await outputs.dead_letters(stage, [letter]))
            return
        key = record.key or b""
        if await _emit_outcome(key, adjudication, alerts_table.get(key)):
            return
        decided = to_millis(adjudication["decided_at"])
        if should_replace_pending(pending.get(key), decided):
            entry = pending_entry(record, decided, _now_ms())
            await changelogs.put(pending, key, entry)
            metrics.PENDING_ADJUDICATIONS.set(len(pending))

    # a held adjudication is personal data too: never held longer than an alert
    hold_ms = min(int(hold_s * 1000), expiry.ttl_ms)

    @app.timer(interval=max(0.5, min(hold_ms / 4000, 10.0)))
    async def expire_orphans() -> None:
        await guard_timer("expire_orphans", _expire_orphans)

    async def _expire_orphans() -> None:
        now_ms = _now_ms()
        expired = [(k, v) for k, v in pending.items() if is_expired(v, now_ms, hold_ms)]
        if not expired:
            return
        letters = [orphan_dead_letter(entry, hold_ms) for _, entry in expired]
        await asyncio.gather(*await outputs.dead_letters("worker.adjudications", letters))
        for key, _ in expired:
            await changelogs.delete(pending, key)
        metrics.PENDING_ADJUDICATIONS.set(len(pending))

    @app.timer(interval=sweep_interval_s(
        settings.alert_table_ttl_s, settings.alert_table_keep_after_outcome_s))  # fmt: skip
    async def expire_alerts() -> None:
        await guard_timer("expire_alerts", _expire_alerts)

    async def _expire_alerts() -> None:
        # only this worker's partitions are in the table (no standbys): each
        # worker expires what it owns, and each delete is a changelog tombstone
        for key in expiry.due(list(alerts_table.items()), _now_ms()):
            await changelogs.delete(alerts_table, key)
        metrics.ALERTS_TABLE_ENTRIES.set(len(alerts_table))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
