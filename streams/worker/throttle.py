"""Log lines that repeat at most once a minute per key; the metrics count every occurrence.

Ten thousand poison records used to write ten thousand WARNING lines. A
:class:`ThrottledLog` writes the first occurrence of each key at once, then
folds the following ones into the next line it writes for that key (at most
one per ``every_s``), saying how many were folded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from typing import Any

EVERY_S = 60.0


class ThrottledLog:
    """A logger wrapper that rate-limits lines per key; see the module doc."""

    def __init__(
        self,
        logger: logging.Logger,
        every_s: float = EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.every_s = every_s
        self.clock = clock
        self._last: dict[Hashable, float] = {}
        self._folded: dict[Hashable, int] = {}

    def warning(self, key: Hashable, message: str, *args: Any) -> bool:
        """Log ``message % args`` at WARNING unless ``key`` was logged within ``every_s``.

        Returns whether a line was written.
        """
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.every_s:
            self._folded[key] = self._folded.get(key, 0) + 1
            return False
        self._last[key] = now
        folded = self._folded.pop(key, 0)
        if folded:
            message += " (and %d more like it in the last %.0f s)"
            args = (*args, folded, now - (last if last is not None else now))
        self.logger.warning(message, *args)
        return True
