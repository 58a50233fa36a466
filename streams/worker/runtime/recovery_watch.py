"""Says what Faust's table recovery waits for when it takes too long.

Why: a worker in table recovery keeps its input partitions paused until every
active changelog partition is read up to the highwater it measured when the
rebalance began. When the records never arrive, Faust only logs "No event
received for active tp … since recovery start" every few seconds: the
worker stays up, not ready, and its partitions never move. That state was
seen once per few dozen rebalances in the worker tests, and its cause is
not proven; this watch gathers, in one log line per stall (and again each
minute), everything the cause could be: the changelog partitions behind and
the Kafka client's position in each, whether Faust's fetcher task is alive,
whether the flow and the partitions are active, what the Kafka client holds
buffered, and how full the changelog queue is. The same duration is a gauge,
so a dashboard shows a stuck recovery without reading logs.

It reads Faust's and aiokafka's private attributes, read-only, and never
fails the timer: a missing attribute is reported as missing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from streams.worker import metrics

log = logging.getLogger(__name__)

STALL_AFTER_S = 30.0
"""Recovery of a few changelog records takes well under a second here; 30 s is a stall."""
REPEAT_S = 60.0


def _describe(tps: Iterable[Any]) -> str:
    return ",".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(tps)) or "-"


class RecoveryWatch:
    """One tick per timer interval; logs the recovery state once it has stalled."""

    def __init__(self, app: Any, *, stall_after_s: float = STALL_AFTER_S) -> None:
        self.app = app
        self.stall_after_s = stall_after_s
        self._logged_at: float | None = None

    async def tick(self) -> str | None:
        """The line logged this tick, if any."""
        recovery = getattr(self.app.tables, "_recovery", None)
        started = getattr(recovery, "_recovery_started_at", None)
        if recovery is None or not recovery.in_recovery or started is None:
            self._logged_at = None
            metrics.RECOVERY_SECONDS.set(0)
            return None
        now = time.monotonic()
        elapsed = now - started
        metrics.RECOVERY_SECONDS.set(elapsed)
        if elapsed < self.stall_after_s:
            return None
        if self._logged_at is not None and now - self._logged_at < REPEAT_S:
            return None
        self._logged_at = now
        line = await self.describe(recovery, elapsed)
        log.warning("%s", line)
        return line

    async def describe(self, recovery: Any, elapsed: float) -> str:
        app, consumer = self.app, self.app.consumer
        behind = {tp: n for tp, n in recovery.active_remaining().items() if n > 0}
        parts = [f"table recovery has run {elapsed:.0f} s"]
        for tp in sorted(behind):
            position = _client_position(consumer, tp)
            parts.append(
                f"{tp.topic}[{tp.partition}] read to {recovery.active_offsets.get(tp)} of "
                f"{recovery.active_highwaters.get(tp)}, client position {position}"
            )
        parts.append(self._fetcher_state())
        active = set(getattr(consumer, "_active_partitions", None) or ())
        paused = set(getattr(consumer, "_paused_partitions", ()))
        buffered = set(getattr(consumer, "_buffered_partitions", ()))
        parts.append(
            f"flow active {consumer.flow_active}, flow control active "
            f"{app.flow_control.is_active()}; behind and not active: "
            f"{_describe(set(behind) - active)}; active: {_describe(active)}; paused: "
            f"{_describe(paused)}; buffered: {_describe(buffered)}"
        )
        queue = getattr(app.tables, "_changelog_queue", None)
        if queue is not None:
            parts.append(f"changelog queue {queue.qsize()}/{queue.maxsize}")
        parts.append(self._client_state(consumer))
        return "; ".join(parts)

    def _fetcher_state(self) -> str:
        fetcher = getattr(self.app, "_fetcher", None)
        if fetcher is None:
            return "fetcher: none"
        drainer = getattr(fetcher, "_drainer", None)
        tasks = list(getattr(fetcher, "_futures", ()))
        finished = [t for t in tasks if t.done()]
        return (
            f"fetcher: state {getattr(fetcher, 'state', '?')}, started "
            f"{fetcher._started.is_set()}, crashed {getattr(fetcher, 'crashed', '?')}, "
            f"drainer {'none' if drainer is None else ('done' if drainer.done() else 'running')}"
            f", tasks {len(tasks)} ({len(finished)} done)"
        )

    @staticmethod
    def _client_state(consumer: Any) -> str:
        try:
            thread = consumer._thread
            fetcher = thread._consumer._fetcher
            subscription = fetcher._subscriptions
            return (
                f"client: reassignment in progress {subscription.reassignment_in_progress}, "
                f"holding records of {_describe(fetcher._records)}, fetches in flight to "
                f"nodes {sorted(fetcher._in_flight)}; calls waiting for the consumer "
                f"thread {_waiting(thread)}, for the main thread {_waiting(consumer)}"
            )
        except Exception as exc:  # noqa: BLE001 - a diagnostic never fails
            return f"client: unknown ({type(exc).__name__}: {exc})"


def _client_position(consumer: Any, tp: Any) -> object:
    """The Kafka client's fetch position, read from its state.

    Not ``consumer.position()``: that call runs on the consumer thread's
    queue of two workers and waits while the position is being reset, so a
    diagnostic could take a worker from the very fetch it is waiting for.
    """
    try:
        client = consumer._thread._consumer
        state = client._subscription.subscription.assignment.state_value(tp)
        if state is None:
            return "unassigned"
        return state.position if state.has_valid_position else "being reset"
    except Exception as exc:  # noqa: BLE001 - a diagnostic never fails
        return f"unknown ({type(exc).__name__})"


def _waiting(owner: Any) -> object:
    queue = getattr(getattr(owner, "_method_queue", None), "_queue", None)
    return "?" if queue is None else queue.qsize()
