"""Repeated log lines: the first few per key and minute are written, the rest counted."""

from __future__ import annotations

import logging

from common.log_limit import SUPPRESSED, RateLimitFilter, limited


def _record(msg: str, level: int = logging.WARNING, **extra: str) -> logging.LogRecord:
    record = logging.LogRecord("lfr.test", level, __file__, 1, msg, ("x",), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_first_burst_per_window_then_counted_and_reported() -> None:
    now = [0.0]
    limit = RateLimitFilter(burst=3, window_s=60, clock=lambda: now[0])
    before = SUPPRESSED.labels("sink.dead_letter")._value.get()
    passed = [limit.filter(_record("dead letter %s", **limited("sink.dead_letter")))
              for _ in range(10)]  # fmt: skip
    assert passed == [True] * 3 + [False] * 7
    assert SUPPRESSED.labels("sink.dead_letter")._value.get() - before == 7
    # another key has its own budget; INFO lines without a key are never limited
    assert limit.filter(_record("other %s"))
    assert all(limit.filter(_record("info %s", logging.INFO)) for _ in range(20))
    now[0] = 61.0
    record = _record("dead letter %s", **limited("sink.dead_letter"))
    assert limit.filter(record)
    assert record.getMessage() == "dead letter x [7 similar lines held back]"


def test_without_a_key_the_template_is_the_key() -> None:
    limit = RateLimitFilter(burst=2, window_s=60, clock=lambda: 0.0)
    assert [limit.filter(_record("Connection failed: %s")) for _ in range(4)] == [
        True, True, False, False]  # fmt: skip
    assert limit.filter(_record("Bootstrap not ready: %s"))
