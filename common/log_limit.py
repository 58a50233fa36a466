"""Repeated log lines let through a few times a minute, the rest counted.

A poison topic or a broker that is away can make one line repeat thousands
of times (one per dead letter, one per reconnect). :class:`RateLimitFilter`
lets the first ``burst`` records of each key through per ``window_s`` and
counts the rest in ``lfr_log_lines_suppressed_total{key}``; the next line let
through says how many were held back. The key is what the caller passes as
``extra=limited("...")`` (a small fixed set), else the logger name and the
message template, so the metric's labels stay bounded.

Install it on the handlers with :func:`install`; the sink does, and any other
process may.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter

SUPPRESSED = Counter(
    "lfr_log_lines_suppressed_total",
    "Log lines held back by the rate limit (the first few per key and minute are written).",
    ["key"],
)

LIMIT_KEY = "lfr_limit_key"


def limited(key: str) -> dict[str, str]:
    """``extra=`` for a log call whose repeats are limited under ``key``."""
    return {LIMIT_KEY: key}


@dataclass
class _Window:
    started: float
    passed: int = 0
    held: int = 0


class RateLimitFilter(logging.Filter):
    """At most ``burst`` records per key per ``window_s``; only ``level`` and above are limited."""

    def __init__(
        self,
        burst: int = 5,
        window_s: float = 60.0,
        level: int = logging.WARNING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.burst, self.window_s, self.level, self.clock = burst, window_s, level, clock
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key_of(record: logging.LogRecord) -> str:
        """The caller's key, else ``logger:template``."""
        key = getattr(record, LIMIT_KEY, None)
        return str(key) if key else f"{record.name}:{record.msg}"[:120]

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether to write ``record``; notes the count held back on the first one let through."""
        has_key = getattr(record, LIMIT_KEY, None) is not None
        if record.levelno < self.level and not has_key:
            return True
        key = self.key_of(record)
        now = self.clock()
        with self._lock:
            window = self._windows.get(key)
            if window is None or now - window.started >= self.window_s:
                held = window.held if window is not None else 0
                window = self._windows[key] = _Window(now)
                if held:
                    record.msg = f"{record.msg} [{held} similar lines held back]"
            if window.passed < self.burst:
                window.passed += 1
                return True
            window.held += 1
        SUPPRESSED.labels(key if has_key else record.name).inc()
        return False


def install(limit: RateLimitFilter | None = None) -> RateLimitFilter:
    """Add one filter to every handler of the root logger (idempotent per handler)."""
    limit = limit or RateLimitFilter()
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RateLimitFilter) for f in handler.filters):
            handler.addFilter(limit)
    return limit
