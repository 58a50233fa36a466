"""The recovery watch: silent while recovery progresses, then describe, restart, give up."""

from __future__ import annotations

import asyncio
from collections import Counter
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from streams.worker import metrics
from streams.worker.runtime import recovery_watch
from streams.worker.runtime.guard import WorkerFailure
from streams.worker.runtime.recovery_watch import RecoveryStalled, RecoveryWatch

WINDOWS = TP("app-windows-changelog", 1)
CLOCK = TP("app-site_clock-changelog", 1)
DETECTIONS = TP("detections", 1)


class Recovery:
    def __init__(self, started: float) -> None:
        self.in_recovery = True
        self._recovery_started_at = started
        self._last_active_event_processed_at: float | None = None
        self.active_offsets = Counter({WINDOWS: -1, CLOCK: 4})
        self.active_highwaters = Counter({WINDOWS: 3, CLOCK: 4})

    def active_remaining(self) -> Counter[TP]:
        offsets = self.active_offsets
        return Counter({tp: h - offsets[tp] for tp, h in self.active_highwaters.items()})


class Fetcher:
    def __init__(self, ended: bool) -> None:
        self.state = "running"
        self._started = asyncio.Event()
        self._started.set()
        self.crashed = ended
        self.should_stop = False
        task = SimpleNamespace(done=lambda: ended)
        self._futures = [task]
        self.starts = 0

    async def maybe_start(self) -> None:
        self.starts += 1


class App:
    def __init__(self, recovery: Recovery | None, fetcher_ended: bool = False) -> None:
        self.tables = SimpleNamespace(_recovery=recovery, _changelog_queue=None)
        self.consumer = SimpleNamespace(
            flow_active=True, _active_partitions={CLOCK}, _paused_partitions={DETECTIONS},
            _buffered_partitions=set(),
        )  # fmt: skip
        self.flow_control = SimpleNamespace(is_active=lambda: True)
        self._fetcher = Fetcher(fetcher_ended)
        self.fetcher_stops = 0

    async def _stop_fetcher(self) -> None:
        self.fetcher_stops += 1


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def watch_for(app: App, clock: Clock) -> tuple[RecoveryWatch, list[str]]:
    calls: list[str] = []
    watch = RecoveryWatch(
        app, clock=clock,
        stop_worker=lambda: calls.append("stop"),
        rejoin=lambda consumer: calls.append("rejoin"),
    )  # fmt: skip
    return watch, calls


@pytest.fixture(autouse=True)
def no_failure() -> Any:
    yield
    WorkerFailure.reason = None
    metrics.WORKER_FAILED.set(0)


def test_nothing_is_done_without_a_recovery_or_while_it_progresses() -> None:
    clock = Clock()
    assert asyncio.run(watch_for(App(None), clock)[0].tick()) is None
    assert metrics.RECOVERY_SECONDS._value.get() == 0
    recovery = Recovery(started=clock.now)
    watch, calls = watch_for(App(recovery), clock)
    for _ in range(40):  # 200 s of recovery that applies a changelog record every 5 s
        clock.now += 5
        recovery._last_active_event_processed_at = clock.now - 1
        assert asyncio.run(watch.tick()) is None
    assert calls == []
    assert metrics.RECOVERY_SECONDS._value.get() == 200


def test_a_stalled_recovery_is_described_then_restarted_once() -> None:
    clock = Clock()
    watch, calls = watch_for(App(Recovery(started=clock.now)), clock)
    clock.now += 10
    assert asyncio.run(watch.tick()) is None
    clock.now += 15
    line = asyncio.run(watch.tick())
    assert line is not None and line.startswith("table recovery has made no progress for 25 s")
    # the partition behind is named with how far it was read; the one caught up is not
    assert "app-windows-changelog[1] read to -1 of 3, client position unknown" in line
    assert "app-site_clock-changelog[1] read to" not in line
    assert "behind and not active: app-windows-changelog[1]" in line
    assert "paused: detections[1]" in line
    assert "fetcher: state running, started True, crashed False, task alive" in line
    clock.now += 5
    assert asyncio.run(watch.tick()) is None  # said once a minute at most
    clock.now += 15
    step = asyncio.run(watch.tick())
    assert step is not None and "asked the group to rebalance" in step
    assert "fetcher" not in step  # its task is alive: left alone
    assert calls == ["rejoin"]
    clock.now += 5
    asyncio.run(watch.tick())
    assert calls == ["rejoin"]  # once per recovery


def test_an_ended_fetcher_is_started_again_before_the_rebalance() -> None:
    clock = Clock()
    app = App(Recovery(started=clock.now), fetcher_ended=True)
    watch, calls = watch_for(app, clock)
    clock.now += 45
    step = asyncio.run(watch.tick())
    assert step is not None and "started the ended fetcher again" in step
    assert (app.fetcher_stops, app._fetcher.starts, calls) == (1, 1, ["rejoin"])


def test_the_worker_stops_when_restarted_recoveries_never_complete() -> None:
    clock = Clock()
    recovery = Recovery(started=clock.now)
    watch, calls = watch_for(App(recovery), clock)
    for _ in range(20):  # each rebalance starts a new recovery that stalls again
        clock.now += 5
        asyncio.run(watch.tick())
        if clock.now - recovery._recovery_started_at >= 60:
            recovery._recovery_started_at = clock.now
    assert calls[:2] == ["rejoin", "rejoin"]
    assert "stop" not in calls  # 100 s
    for _ in range(10):
        clock.now += 5
        asyncio.run(watch.tick())
        if clock.now - recovery._recovery_started_at >= 60:
            recovery._recovery_started_at = clock.now
    assert calls.count("stop") == 1
    assert isinstance(WorkerFailure.reason, RecoveryStalled)
    assert metrics.WORKER_FAILED._value.get() == 1


def test_a_completed_recovery_resets_the_bound() -> None:
    clock = Clock()
    app = App(Recovery(started=clock.now))
    watch, calls = watch_for(app, clock)
    clock.now += 100
    asyncio.run(watch.tick())
    app.tables._recovery.in_recovery = False
    asyncio.run(watch.tick())
    app.tables._recovery = Recovery(started=clock.now + 1000)
    clock.now += 1030
    asyncio.run(watch.tick())
    assert "stop" not in calls
    assert recovery_watch.GIVE_UP_AFTER_S > 100
