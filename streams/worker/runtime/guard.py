"""No record is lost when an agent fails: retry in place, then stop without committing.

Faust acknowledges the event an agent was handling when the agent raises or
is cancelled (the stream's ``finally``), and then commits its offset: the
record is never processed again, although its outputs may never have been
sent. So every agent runs its per-record work through :meth:`AgentGuard.run`,
and the detections batch handler (fed by the batch source, which acknowledges
a batch only when its handler returns) through :meth:`AgentGuard.run_batch`;
both follow the same rules:

- an exception is retried in place with backoff (a transient fault: metadata
  missing for a moment, a broker restarting) for up to ``retry_limit_s``
  (and at least :data:`MIN_ATTEMPTS` times);
- if it still fails, or the work is cancelled half done (rebalance,
  shutdown), no offset is committed at or past its records: Faust events are
  *pinned* (their reference count is raised so that Faust's acknowledgement
  never reaches zero); a batch from the batch source needs nothing, because
  the guard then never returns (or re-raises the cancellation) and the
  source acknowledges only a batch whose handler returned;
- after a failure that outlasted the retries, the worker stops (SIGTERM to
  itself: it leaves the group, flushes and commits what was acknowledged)
  and exits non-zero, so its supervisor restarts it and the record is
  processed again from the committed offset.

Timers have no offsets; :func:`guard_timer` counts and logs their failures
and lets the next tick try again instead of killing the timer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from streams.worker import metrics
from streams.worker.source import SourceRecord

log = logging.getLogger(__name__)

RETRY_LIMIT_S = 120.0
"""Longest time one record's work is retried before the worker stops (a broker restart
takes tens of seconds, and one Kafka request may itself wait 40 s)."""
MIN_ATTEMPTS = 3
FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0
EXIT_CODE = 70
"""Exit status of a worker stopped by a failure (EX_SOFTWARE)."""


class WorkerFailure:
    """The failure that stopped the worker, if any (read by ``lfr worker`` for its exit code)."""

    reason: BaseException | None = None


def pin(events: Sequence[Any]) -> None:
    """Keep Faust from ever acknowledging ``events`` (their offsets are not committed)."""
    for event in events:
        event.message.incref()


class AgentGuard:
    """Runs an agent's work on some events; see the module doc."""

    def __init__(
        self,
        *,
        retry_limit_s: float | None = None,
        stop_worker: Callable[[], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.retry_limit_s = RETRY_LIMIT_S if retry_limit_s is None else retry_limit_s
        self.stop_worker = stop_worker or _terminate_self
        self.sleep = sleep
        self.clock = clock or (lambda: asyncio.get_running_loop().time())
        self.failed = False

    async def run(
        self, agent: str, events: Sequence[Any], work: Callable[[], Awaitable[None]]
    ) -> None:
        """Run ``work`` for Faust ``events``.

        Returns once it succeeded. After a failure for good (or once any
        agent failed for good) the events are pinned and this never returns:
        the worker is stopping and the agent waits to be cancelled.
        """
        await self._guarded(agent, work, where=lambda: _where_events(events),
                            pin=lambda: pin(events))  # fmt: skip

    async def run_batch(
        self, agent: str, records: Sequence[SourceRecord], work: Callable[[], Awaitable[None]]
    ) -> None:
        """Run ``work`` for a batch handed over by the batch source.

        As :meth:`run`, with nothing to pin: the source acknowledges the batch
        only if this returns, and after a failure for good it never does.
        """
        await self._guarded(agent, work, where=lambda: _where_records(records), pin=_nothing)

    def source_failed(
        self, agent: str
    ) -> Callable[[BaseException, Sequence[SourceRecord]], Awaitable[None]]:
        """The batch source's ``on_failure``: a handler that raised past the guard stops the worker.

        The source has halted (nothing more is acknowledged); the worker must
        not stay up, ready, with an input that no longer moves.
        """

        async def failed(exc: BaseException, records: Sequence[SourceRecord]) -> None:
            if not self.failed:
                self._fail(agent, _where_records(records), "outside the guard's retries", exc)

        return failed

    async def _guarded(
        self,
        agent: str,
        work: Callable[[], Awaitable[None]],
        *,
        where: Callable[[], str],
        pin: Callable[[], None],
    ) -> None:
        if self.failed:
            pin()
            await _forever()
        started = self.clock()
        backoff = FIRST_BACKOFF_S
        attempt = 0
        while True:
            attempt += 1
            try:
                await work()
                return
            except asyncio.CancelledError:
                pin()  # half done: processed again after the rebalance or restart
                raise
            except Exception as exc:
                metrics.AGENT_FAILURES.labels(agent=agent).inc()
                late = self.clock() - started + backoff > self.retry_limit_s
                if late and attempt >= MIN_ATTEMPTS:
                    pin()
                    how = f"{attempt} times over {self.retry_limit_s:.0f} s"
                    self._fail(agent, where(), how, exc)
                    await _forever()
                log.warning(
                    "agent %s failed on %s (attempt %d), retrying in %.1f s: %r",
                    agent, where(), attempt, backoff, exc,
                )  # fmt: skip
                await self.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    def _fail(self, agent: str, where: str, how: str, exc: BaseException) -> None:
        self.failed = True
        WorkerFailure.reason = exc
        metrics.WORKER_FAILED.set(1)
        log.critical(
            "agent %s failed on %s %s: stopping the worker without committing it "
            "(it is processed again after the restart)",
            agent,
            where,
            how,
            exc_info=exc,
        )
        self.stop_worker()


async def guard_timer(name: str, tick: Callable[[], Awaitable[object]]) -> None:
    """Run one timer tick; a failure is counted and logged, the next tick retries."""
    try:
        await tick()
    except asyncio.CancelledError:
        raise
    except Exception:
        metrics.AGENT_FAILURES.labels(agent=name).inc()
        log.exception("timer %s failed; the next tick tries again", name)


def _where_events(events: Sequence[Any]) -> str:
    return _where([event.message for event in events[:1]], len(events))


def _where_records(records: Sequence[SourceRecord]) -> str:
    return _where(records[:1], len(records))


def _where(first: Sequence[Any], count: int) -> str:
    """``topic[partition]@offset`` of the first record (anything with those attributes)."""
    if not first:
        return "no record"
    head = first[0]
    place = f"{head.topic}[{head.partition}]@{head.offset}"
    return place if count == 1 else f"{count} records from {place}"


def _nothing() -> None:
    """Nothing to pin: the batch source acknowledges only a batch whose handler returned."""


def _terminate_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


async def _forever() -> None:
    while True:
        await asyncio.sleep(3600)
