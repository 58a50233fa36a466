"""The agent guard: retries in place, and a record that fails for good is never acknowledged."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from streams.worker.runtime.guard import AgentGuard, guard_timer
from streams.worker.source import SourceRecord

RECORDS = [SourceRecord("lfr.detections", 2, 40, b"S1", b"v", 1),
           SourceRecord("lfr.detections", 2, 41, b"S1", b"v", 1)]  # fmt: skip


def failing(times: int) -> tuple[Callable[[], Any], list[int]]:
    calls: list[int] = []

    async def work() -> None:
        calls.append(1)
        if len(calls) <= times:
            raise RuntimeError("boom")

    return work, calls


async def no_sleep(_s: float) -> None:
    return None


def test_work_cancelled_by_a_stop_re_raises() -> None:
    """A stop cancels the handler's task: the batch is not acknowledged, nothing is retried."""
    guard = AgentGuard(stop_worker=lambda: None)
    started = asyncio.Event()
    calls: list[int] = []

    async def work() -> None:
        calls.append(1)
        started.set()
        await asyncio.sleep(3600)

    async def scenario() -> None:
        task = asyncio.create_task(guard.run("alerts", RECORDS, work))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert calls == [1] and not guard.failed


def test_a_future_cancelled_under_the_work_is_retried_like_a_failure() -> None:
    """A CancelledError nobody asked this task for must not end the input's task."""
    stops: list[int] = []
    guard = AgentGuard(retry_limit_s=30, stop_worker=lambda: stops.append(1), sleep=no_sleep,
                       clock=lambda: 0.0)  # fmt: skip
    calls: list[int] = []

    async def work() -> None:
        calls.append(1)
        if len(calls) == 1:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            future.cancel()  # as a producer's send future cancelled under us
            await future

    asyncio.run(guard.run("adjudications", RECORDS, work))
    assert calls == [1, 1] and not stops and not guard.failed


def test_a_failing_timer_tick_is_logged_and_the_next_one_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def tick() -> None:
        raise RuntimeError("boom")

    asyncio.run(guard_timer("consumer_lag", tick))
    assert "timer consumer_lag failed" in caplog.text


def test_a_transient_failure_is_retried_in_place() -> None:
    stops: list[int] = []
    guard = AgentGuard(retry_limit_s=30, stop_worker=lambda: stops.append(1), sleep=no_sleep,
                       clock=lambda: 0.0)  # fmt: skip
    work, calls = failing(times=2)
    asyncio.run(guard.run("detections", RECORDS, work))
    assert len(calls) == 3 and not stops and not guard.failed


def test_a_batch_failing_for_good_stops_the_worker_and_never_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The batch source acknowledges a batch when its handler returns: the guard must not."""
    stops: list[int] = []
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    guard = AgentGuard(retry_limit_s=2, stop_worker=lambda: stops.append(1), sleep=sleep,
                       clock=lambda: now[0])  # fmt: skip
    work, calls = failing(times=10**6)

    async def scenario() -> None:
        task = asyncio.create_task(guard.run("detections", RECORDS, work))
        while not stops:
            await asyncio.sleep(0)
        await asyncio.sleep(0.01)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # any later batch waits too (the worker is stopping), without running its work
        later = asyncio.create_task(guard.run("detections", RECORDS, work))
        ran = len(calls)
        await asyncio.sleep(0.01)
        assert not later.done() and len(calls) == ran
        later.cancel()

    asyncio.run(scenario())
    assert stops == [1] and guard.failed
    assert "2 records from lfr.detections[2]@40" in caplog.text


def test_a_batch_source_halt_outside_the_guard_stops_the_worker_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stops: list[int] = []
    guard = AgentGuard(stop_worker=lambda: stops.append(1))
    failed = guard.source_failed("detections")
    asyncio.run(failed(RuntimeError("boom"), RECORDS[:1]))
    asyncio.run(failed(RuntimeError("again"), RECORDS[:1]))
    assert stops == [1] and guard.failed
    assert "lfr.detections[2]@40 outside the guard's retries" in caplog.text
