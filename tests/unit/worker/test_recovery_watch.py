"""The recovery watch: silent while recovery is short, one line with the evidence once it stalls."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from types import SimpleNamespace
from typing import Any

from faust.types import TP

from streams.worker import metrics
from streams.worker.runtime.recovery_watch import RecoveryWatch

WINDOWS = TP("app-windows-changelog", 1)
CLOCK = TP("app-site_clock-changelog", 1)
DETECTIONS = TP("detections", 1)


class Recovery:
    def __init__(self, started_ago: float) -> None:
        self.in_recovery = True
        self._recovery_started_at = time.monotonic() - started_ago
        self.active_offsets = Counter({WINDOWS: -1, CLOCK: 4})
        self.active_highwaters = Counter({WINDOWS: 3, CLOCK: 4})

    def active_remaining(self) -> Counter[TP]:
        offsets = self.active_offsets
        return Counter({tp: h - offsets[tp] for tp, h in self.active_highwaters.items()})


def app_with(recovery: Recovery | None) -> Any:
    started = asyncio.Event()
    started.set()
    fetcher = SimpleNamespace(state="running", _started=started, crashed=False, _drainer=None,
                              _futures=set())  # fmt: skip
    consumer = SimpleNamespace(
        flow_active=True, _active_partitions={CLOCK},
        _paused_partitions={DETECTIONS}, _buffered_partitions=set(),
    )  # fmt: skip
    return SimpleNamespace(
        tables=SimpleNamespace(_recovery=recovery, _changelog_queue=None),
        consumer=consumer,
        flow_control=SimpleNamespace(is_active=lambda: True),
        _fetcher=fetcher,
    )


def test_nothing_is_said_without_a_recovery_or_before_it_stalls() -> None:
    assert asyncio.run(RecoveryWatch(app_with(None)).tick()) is None
    assert metrics.RECOVERY_SECONDS._value.get() == 0
    assert asyncio.run(RecoveryWatch(app_with(Recovery(started_ago=2))).tick()) is None
    assert metrics.RECOVERY_SECONDS._value.get() >= 2


def test_a_stalled_recovery_is_described_once_per_minute() -> None:
    watch = RecoveryWatch(app_with(Recovery(started_ago=45)))

    async def two_ticks() -> tuple[str | None, str | None]:
        return await watch.tick(), await watch.tick()

    first, second = asyncio.run(two_ticks())
    assert first is not None and second is None
    assert "table recovery has run 45 s" in first
    # the partition behind is named with how far it was read, the one caught up is not
    assert "app-windows-changelog[1] read to -1 of 3, client position unknown" in first
    assert "app-site_clock-changelog[1] read to" not in first
    assert "behind and not active: app-windows-changelog[1]" in first
    assert "paused: detections[1]" in first
    assert "fetcher: state running, started True, crashed False, drainer none" in first
    assert "client: unknown" in first  # no aiokafka consumer behind this fake
