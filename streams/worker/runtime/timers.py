"""The worker's timers: table expiry, the fetch and recovery watches, the lag gauge, segment rolls.

Each tick runs through :func:`guard_timer`: a failure is counted and logged
and the next tick tries again (a timer has no offsets to protect).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from functools import partial

import faust
from faust.types import TableT

from common.settings import Settings
from streams.worker import metrics
from streams.worker.adjudications import ADJUDICATIONS, ALERTS, PENDING_TABLE, expire_orphans
from streams.worker.expiry import ALERTS_TABLE, AlertExpiry, expire_alerts, sweep_interval_s
from streams.worker.runtime.fetch_watchdog import FetchWatchdog
from streams.worker.runtime.guard import guard_timer
from streams.worker.runtime.lag import LagGauge
from streams.worker.runtime.outputs import StageWriter
from streams.worker.runtime.recovery_watch import RecoveryWatch
from streams.worker.runtime.segment_roll import roll_interval_s, roll_segments
from streams.worker.runtime.tables import now_ms

WATCHDOG_INTERVAL_S = 10.0
"""Two checks this far apart with nothing moving mean the records are lost to the agent."""
LAG_INTERVAL_S = 5.0
RECOVERY_WATCH_INTERVAL_S = 5.0


def timer(
    app: faust.App,
    name: str,
    interval_s: float,
    tick: Callable[[], Awaitable[object]],
    *,
    on_leader: bool = False,
) -> None:
    """Run ``tick`` every ``interval_s`` (on the group leader only if ``on_leader``)."""

    async def run() -> None:
        await guard_timer(name, tick)

    app.timer(interval=interval_s, on_leader=on_leader, name=name)(run)


class TableExpiry:
    """The two expiry timers' ticks over the adjudication tables."""

    def __init__(
        self,
        writer: StageWriter,
        tables: Mapping[str, TableT],
        rule: AlertExpiry,
        hold_ms: int,
        lock: asyncio.Lock,
    ) -> None:
        self.writer = writer
        self.tables = tables
        self.rule = rule
        self.hold_ms = hold_ms
        self.lock = lock
        """Shared with the alerts and adjudications inputs (they write the same tables)."""

    async def orphans(self) -> None:
        """Dead-letter the adjudications whose alert did not come within the hold."""
        async with self.lock:
            pending = self.tables[PENDING_TABLE]
            result = expire_orphans(list(pending.items()), now_ms(), self.hold_ms)
            if result.changes:
                await self.writer.write(ADJUDICATIONS.stage, result)
                metrics.PENDING_ADJUDICATIONS.set(len(pending))

    async def alerts(self) -> None:
        """Delete the alerts past their lifetime (each delete: a changelog tombstone)."""
        async with self.lock:
            alerts = self.tables[ALERTS_TABLE]
            result = expire_alerts(list(alerts.items()), self.rule, now_ms())
            await self.writer.write(ALERTS.stage, result)
            metrics.ALERTS_TABLE_ENTRIES.set(len(alerts))


def install_timers(
    app: faust.App, settings: Settings, writer: StageWriter, tables: Mapping[str, TableT],
    hold_s: float, outcome_tables: asyncio.Lock,
) -> None:  # fmt: skip
    """Every timer of the worker."""
    rule = AlertExpiry(
        ttl_ms=settings.alert_table_ttl_s * 1000,
        keep_after_outcome_ms=settings.alert_table_keep_after_outcome_s * 1000,
    )
    # a held adjudication is personal data too: never held longer than an alert
    hold_ms = min(int(hold_s * 1000), rule.ttl_ms)
    expiry = TableExpiry(writer, tables, rule, hold_ms, outcome_tables)
    timer(app, "expire_orphans", max(0.5, min(hold_ms / 4000, 10.0)), expiry.orphans)
    interval = sweep_interval_s(
        settings.alert_table_ttl_s, settings.alert_table_keep_after_outcome_s
    )
    timer(app, "expire_alerts", interval, expiry.alerts)

    inputs = (settings.topic_detections, settings.topic_operations, settings.topic_adjudications,
              settings.topic_alerts)  # fmt: skip
    watchdog = FetchWatchdog(app, inputs)
    timer(app, "fetch_watchdog", WATCHDOG_INTERVAL_S, watchdog.tick)
    timer(app, "recovery_watch", RECOVERY_WATCH_INTERVAL_S, RecoveryWatch(app).tick)
    lag = LagGauge(app, inputs)

    async def update_lag() -> None:
        lag.update()

    timer(app, "consumer_lag", LAG_INTERVAL_S, update_lag)
    timer(app, "roll_segments", roll_interval_s(settings), partial(roll_segments, app, settings),
          on_leader=True)  # fmt: skip
