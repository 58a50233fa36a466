"""No record is lost when an agent fails: retry in place, then stop without committing.

Every input (lfr.detections, lfr.operations, lfr.alerts, lfr.adjudications)
comes through a batch source (:mod:`streams.worker.runtime.batch_source`),
which acknowledges a batch only when its handler returned; each handler runs
its work through :meth:`AgentGuard.run`:

- an exception is retried in place with backoff (a transient fault: metadata
  missing for a moment, a broker restarting) for up to ``retry_limit_s``
  (and at least :data:`MIN_ATTEMPTS` times);
- a ``CancelledError`` that did not come from cancelling this task (a
  producer future cancelled under it) is such a fault too: re-raised, it
  would end the source's task and leave the input unread while the worker
  stays up;
- if it still fails, the guard never returns (the batch is never
  acknowledged, so no offset is committed at or past its records), the worker
  stops (SIGTERM to itself: it leaves the group, flushes and commits what was
  acknowledged) and exits non-zero, so its supervisor restarts it and the
  records are processed again from the committed offset;
- work cancelled half done (a stop) re-raises: the batch is not acknowledged.

Faust's own per-event path is not used for any input: it acknowledges, then
commits, the event an agent raised on (robinhood/faust #604, faust-streaming
#315) and drops records fetched while a partition is paused.

Timers have no offsets; :func:`guard_timer` counts and logs their failures
and lets the next tick try again instead of killing the timer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Sequence

from streams.worker import metrics
from streams.worker.runtime.batch_source import being_cancelled
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


class AgentGuard:
    """Runs an input handler's work on one batch; see the module doc."""

    def __init__(
        self,
        *,
        retry_limit_s: float | None = None,
        stop_worker: Callable[[], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.retry_limit_s = RETRY_LIMIT_S if retry_limit_s is None else retry_limit_s
        self.stop_worker = stop_worker or terminate_self
        self.sleep = sleep
        self.clock = clock or (lambda: asyncio.get_running_loop().time())
        self.failed = False

    async def run(
        self, agent: str, records: Sequence[SourceRecord], work: Callable[[], Awaitable[None]]
    ) -> None:
        """Run ``work`` for a batch handed over by the batch source.

        Returns once it succeeded. After a failure for good (or once any
        agent failed for good) this never returns: the source acknowledges the
        batch only if it does, and the worker is stopping.
        """
        if self.failed:
            await _forever()
        started = self.clock()
        backoff = FIRST_BACKOFF_S
        attempt = 0
        while True:
            attempt += 1
            try:
                await work()
                return
            except (Exception, asyncio.CancelledError) as exc:
                if isinstance(exc, asyncio.CancelledError) and being_cancelled():
                    raise  # a stop: not acknowledged, processed again after the restart
                metrics.AGENT_FAILURES.labels(agent=agent).inc()
                late = self.clock() - started + backoff > self.retry_limit_s
                if late and attempt >= MIN_ATTEMPTS:
                    how = f"{attempt} times over {self.retry_limit_s:.0f} s"
                    self._fail(agent, _where_records(records), how, exc)
                    await _forever()
                log.warning(
                    "agent %s failed on %s (attempt %d), retrying in %.1f s: %r",
                    agent, _where_records(records), attempt, backoff, exc,
                )  # fmt: skip
                await self.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

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


def _where_records(records: Sequence[SourceRecord]) -> str:
    """``topic[partition]@offset`` of the first record, and how many there are."""
    if not records:
        return "no record"
    head = records[0]
    place = f"{head.topic}[{head.partition}]@{head.offset}"
    return place if len(records) == 1 else f"{len(records)} records from {place}"


def terminate_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


async def _forever() -> None:
    while True:
        await asyncio.sleep(3600)
