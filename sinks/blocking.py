"""The sink's "blocked by its environment" state: pure bookkeeping, the clock passed in.

While blocked the sink neither polls beyond what it holds, nor commits, nor
dead-letters (the fail-safe rule of :mod:`sinks.errors`): it retries the same batch
with a capped exponential backoff, reports unready with the cause, and after
``max_blocked_s`` of continuous blocking gives up so that a supervisor
restarts it. One log line when it starts blocking (or the cause changes) and
one when it recovers; the repeats are counted in a metric, not logged.
"""

from __future__ import annotations

from dataclasses import dataclass

from sinks import metrics


@dataclass
class Blockage:
    """Why and since when the sink cannot write, and when to try again."""

    max_blocked_s: float
    max_backoff_s: float = 5.0
    first_backoff_s: float = 0.2
    cause: str | None = None
    message: str = ""
    since: float | None = None
    attempts: int = 0
    retry_at: float = 0.0

    @property
    def blocked(self) -> bool:
        """Whether the sink is blocked now."""
        return self.cause is not None

    def fail(self, cause: str, message: str, now: float) -> bool:
        """Count one environment failure; True when it starts a block or changes its cause.

        The caller logs exactly when this returns True.
        """
        metrics.ENVIRONMENT_ERRORS.labels(cause).inc()
        news = cause != self.cause
        if self.cause is not None and news:
            metrics.BLOCKED.labels(self.cause).set(0)
        if self.since is None:
            self.since = now
        self.cause, self.message = cause, message
        metrics.BLOCKED.labels(cause).set(1)
        self.attempts += 1
        delay = min(self.max_backoff_s, self.first_backoff_s * 2 ** min(self.attempts - 1, 16))
        # the last attempt falls on the bound, so giving up is never later than it
        self.retry_at = min(now + delay, self.since + self.max_blocked_s)
        return news

    def due(self, now: float) -> bool:
        """Whether the next attempt may run."""
        return now >= self.retry_at

    def recover(self, now: float) -> float | None:
        """Clear the block; how long it lasted (None when there was none)."""
        if self.cause is None or self.since is None:
            return None
        metrics.BLOCKED.labels(self.cause).set(0)
        lasted = now - self.since
        self.cause, self.message, self.since = None, "", None
        self.attempts, self.retry_at = 0, 0.0
        return lasted

    def overdue(self, now: float) -> bool:
        """Blocked for longer than ``max_blocked_s`` without a break."""
        return self.since is not None and now - self.since >= self.max_blocked_s

    def status(self) -> tuple[bool, str]:
        """(ready, one line) for /readyz."""
        if self.cause is None:
            return True, "ready"
        return False, f"blocked ({self.cause}): {self.message}"[:500]
