"""No record is lost when an agent fails: retry in place, then stop without committing.

Faust acknowledges the event an agent was handling when the agent raises or
is cancelled (the stream's ``finally``), and then commits its offset: the
record is never processed again, although its outputs may never have been
sent. So every agent runs its per-record (or per-batch) work through
:meth:`AgentGuard.run`:

- an exception is retried in place with backoff (a transient fault: metadata
  missing for a moment, a broker restarting) for up to ``retry_limit_s``
  (and at least :data:`MIN_ATTEMPTS` times);
- if it still fails, or the work is cancelled half done (rebalance,
  shutdown), the events are *pinned*: their reference count is raised so
  that Faust's acknowledgement never reaches zero, and no offset is
  committed at or past them;
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
        """Run ``work`` for ``events``.

        Returns once it succeeded. After a failure for good (or once any
        agent failed for good) the events are pinned and this never returns:
        the worker is stopping and the agent waits to be cancelled.
        """
        if self.failed:
            pin(events)
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
                pin(events)  # half done: processed again after the rebalance or restart
                raise
            except Exception as exc:
                metrics.AGENT_FAILURES.labels(agent=agent).inc()
                where = _where(events)
                late = self.clock() - started + backoff > self.retry_limit_s
                if late and attempt >= MIN_ATTEMPTS:
                    pin(events)
                    self._fail(agent, where, attempt, exc)
                    await _forever()
                log.warning(
                    "agent %s failed on %s (attempt %d), retrying in %.1f s: %r",
                    agent, where, attempt, backoff, exc,
                )  # fmt: skip
                await self.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    def _fail(self, agent: str, where: str, attempts: int, exc: Exception) -> None:
        self.failed = True
        WorkerFailure.reason = exc
        metrics.WORKER_FAILED.set(1)
        log.critical(
            "agent %s failed on %s %d times over %.0f s: stopping the worker without "
            "committing it (it is processed again after the restart)",
            agent,
            where,
            attempts,
            self.retry_limit_s,
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


def _where(events: Sequence[Any]) -> str:
    if not events:
        return "no record"
    first = events[0].message
    if len(events) == 1:
        return f"{first.topic}[{first.partition}]@{first.offset}"
    return f"{len(events)} records from {first.topic}[{first.partition}]@{first.offset}"


def _terminate_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


async def _forever() -> None:
    while True:
        await asyncio.sleep(3600)
