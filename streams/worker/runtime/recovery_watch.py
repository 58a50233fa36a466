"""Watches Faust's table recovery: says what it waits for, restarts it, and gives up.

Why: a worker in table recovery keeps its input partitions paused until every
active changelog partition is read up to the highwater it measured when the
rebalance began. When the records never arrive, Faust only logs "No event
received for active tp … since recovery start" every few seconds: the
worker stays up and its partitions never move (seen in CI once: a worker
that kept its partition when a second one joined; its cause is not proven).

What, measured from the recovery's last progress (its start or the last
changelog record it applied), checked every few seconds:

- after ``DESCRIBE_AFTER_S``: one WARNING line (again each minute) with
  everything the cause could be: the changelog partitions behind and the
  Kafka client's position in each, whether Faust's fetcher task is alive,
  whether the flow and the partitions are active, what the Kafka client
  holds buffered, how many calls wait for the consumer thread's two workers,
  how full the changelog queue is;
- after ``RESTART_AFTER_S``: a fetcher whose task has ended is started again
  (Faust's own restart only starts one never started), and the group is
  asked to rebalance, which makes Faust seek and read the changelogs anew;
  once per recovery;
- after ``GIVE_UP_AFTER_S`` without a completed recovery (over any number of
  restarts): the worker stops with exit status 70, as after an agent
  failure, for its supervisor to start a fresh process. Nothing is lost:
  the paused partitions' records were never acknowledged.

``lfr_worker_table_recovery_seconds`` is the running recovery's duration (the
LfrWorkerRecoveryStalled alert). The watch reads Faust's and aiokafka's
private attributes, read-only; the description never fails the timer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from streams.worker import metrics
from streams.worker.runtime.guard import EXIT_CODE, WorkerFailure, terminate_self

log = logging.getLogger(__name__)

DESCRIBE_AFTER_S = 20.0
"""Recovery of this project's small tables takes well under a second."""
RESTART_AFTER_S = 40.0
GIVE_UP_AFTER_S = 150.0
REPEAT_S = 60.0


class RecoveryStalled(RuntimeError):
    """Table recovery made no progress within the bound, over its restarts."""


def _names(tps: Iterable[Any]) -> str:
    return ",".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(tps)) or "-"


class RecoveryWatch:
    """One tick per timer interval; see the module doc for what each tick may do."""

    def __init__(
        self,
        app: Any,
        *,
        stop_worker: Callable[[], None] = terminate_self,
        rejoin: Callable[[Any], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.stop_worker = stop_worker
        self.rejoin = rejoin or request_rejoin
        self.clock = clock
        self._since: float | None = None
        """When the recovery period began (kept over restarts, until one completes)."""
        self._restarted: float | None = None
        """The start time of the recovery already restarted."""
        self._logged_at: float | None = None
        self._stopped = False

    async def tick(self) -> str | None:
        """What this tick did, if anything (the line it logged, or the step it took)."""
        recovery = getattr(self.app.tables, "_recovery", None)
        started = getattr(recovery, "_recovery_started_at", None)
        if recovery is None or not recovery.in_recovery or started is None:
            self._since = self._restarted = self._logged_at = None
            metrics.RECOVERY_SECONDS.set(0)
            return None
        now = self.clock()
        if self._since is None:
            self._since = started
        metrics.RECOVERY_SECONDS.set(now - self._since)
        last = getattr(recovery, "_last_active_event_processed_at", None)
        idle = now - max(started, last or started)
        if idle < DESCRIBE_AFTER_S or self._stopped:
            return None
        if now - self._since >= GIVE_UP_AFTER_S:
            return self._give_up(now - self._since)
        said = None
        if self._logged_at is None or now - self._logged_at >= REPEAT_S:
            self._logged_at = now
            said = self.describe(recovery, idle)
            log.warning("%s", said)
        if idle >= RESTART_AFTER_S and self._restarted != started:
            self._restarted = started
            said = await self._restart(idle)
        return said

    async def _restart(self, idle: float) -> str:
        fetcher = getattr(self.app, "_fetcher", None)
        revived = False
        if fetcher is not None and _fetcher_ended(fetcher):
            await self.app._stop_fetcher()
            await fetcher.maybe_start()
            revived = True
        self.rejoin(self.app.consumer)
        metrics.RECOVERY_RESTARTS.inc()
        step = (
            f"table recovery made no progress for {idle:.0f} s: "
            + ("started the ended fetcher again and " if revived else "")
            + "asked the group to rebalance, to read the changelogs anew"
        )
        log.warning("%s", step)
        return step

    def _give_up(self, elapsed: float) -> str:
        self._stopped = True
        reason = RecoveryStalled(f"table recovery did not complete in {elapsed:.0f} s")
        WorkerFailure.reason = reason
        metrics.WORKER_FAILED.set(1)
        step = (
            f"{reason}, over a restart: stopping the worker (exit status {EXIT_CODE}) for its "
            "supervisor to start a fresh process; its input partitions were paused and "
            "nothing of them is committed"
        )
        log.critical("%s", step)
        self.stop_worker()
        return step

    def describe(self, recovery: Any, idle: float) -> str:
        app, consumer = self.app, self.app.consumer
        behind = {tp: n for tp, n in recovery.active_remaining().items() if n > 0}
        parts = [f"table recovery has made no progress for {idle:.0f} s"]
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
            f"{_names(set(behind) - active)}; active: {_names(active)}; paused: "
            f"{_names(paused)}; buffered: {_names(buffered)}"
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
        return (
            f"fetcher: state {getattr(fetcher, 'state', '?')}, started "
            f"{fetcher._started.is_set()}, crashed {getattr(fetcher, 'crashed', '?')}, "
            f"task {'ended' if _fetcher_ended(fetcher) else 'alive'}"
        )

    @staticmethod
    def _client_state(consumer: Any) -> str:
        try:
            thread = consumer._thread
            fetcher = thread._consumer._fetcher
            subscription = fetcher._subscriptions
            return (
                f"client: reassignment in progress {subscription.reassignment_in_progress}, "
                f"holding records of {_names(fetcher._records)}, fetches in flight to "
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


def _fetcher_ended(fetcher: Any) -> bool:
    """Started, not stopping, and its fetch task is gone (crashed or returned)."""
    if not fetcher._started.is_set() or fetcher.should_stop:
        return False
    return all(task.done() for task in getattr(fetcher, "_futures", ()))


def request_rejoin(consumer: Any) -> None:
    """Ask the Kafka client's group coordinator to rejoin (on its own thread's loop)."""
    thread = consumer._thread
    coordinator = thread._consumer._coordinator
    thread.thread_loop.call_soon_threadsafe(coordinator.request_rejoin)
