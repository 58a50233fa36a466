"""Repeated log lines: one per key per interval, the rest folded into the next line."""

from __future__ import annotations

import logging

import pytest

from streams.worker.throttle import ThrottledLog


def test_repeats_are_folded_per_key(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = ThrottledLog(logging.getLogger("lfr.test"), every_s=60.0, clock=lambda: now[0])
    caplog.set_level(logging.WARNING)
    written = [log.warning(("worker.detections", "undecodable"), "dead letter %d", i)
               for i in range(1000)]  # fmt: skip
    assert written.count(True) == 1
    assert log.warning(("worker.detections", "unknown_site"), "other reason")  # its own key
    now[0] = 61.0
    assert log.warning(("worker.detections", "undecodable"), "dead letter %d", 1000)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "dead letter 0",
        "other reason",
        "dead letter 1000 (and 999 more like it in the last 61 s)",
    ]
