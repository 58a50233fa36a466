"""The batch consumer's fetch loop without a broker: how long it lets one fetch call wait.

A partition paused for a full batch-source buffer is left out of Faust's
fetch call, and a call that waits its whole timeout for the other (idle)
partitions left the worker idle once the buffer drained (0.3-0.7 s after
every ~7,500 detections at full load). Faust's own fetch step is replaced by
a recorder here: what is tested is only what the consumer asks of it.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import faust
import pytest
from faust.transport.drivers.aiokafka import Consumer as AIOKafkaFaustConsumer
from faust.types import TP

from streams.worker.runtime.batch_source import (
    FETCH_MAX_WAIT_MS,
    BatchConsumer,
    install_batch_handler,
)

TOPIC = "lfr.detections"
BUSY, IDLE = TP(TOPIC, 0), TP("lfr.operations", 0)


async def _handler(records: list[Any]) -> None:
    return None


def batch_consumer() -> BatchConsumer:
    app = faust.App("lfr-unit-batch-consumer", broker="kafka://127.0.0.1:1")
    install_batch_handler(app, TOPIC, _handler, max_batch=10)
    consumer = app.consumer
    assert isinstance(consumer, BatchConsumer)
    consumer._active_partitions = {BUSY, IDLE}
    return consumer


@pytest.fixture
def fetch_calls(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The timeouts Faust's fetch step was called with (it returns nothing)."""
    calls: list[float] = []

    async def recorded(self: Any, timeout: float) -> tuple[dict, set]:
        calls.append(timeout)
        return {}, set(self._get_active_partitions())

    monkeypatch.setattr(AIOKafkaFaustConsumer, "_wait_next_records", recorded)
    return calls


def test_a_fetch_call_waits_faust_s_timeout_while_no_buffer_is_full(
    fetch_calls: list[float],
) -> None:
    consumer = batch_consumer()
    asyncio.run(consumer._wait_next_records(1.0))
    assert fetch_calls == [1.0]


def test_a_fetch_call_is_short_while_a_partition_waits_for_its_buffer_to_drain(
    fetch_calls: list[float],
) -> None:
    consumer = batch_consumer()
    consumer.on_buffer_full(BUSY)
    assert consumer._get_active_partitions() == {IDLE}
    asyncio.run(consumer._wait_next_records(1.0))
    assert fetch_calls == [BatchConsumer.FULL_BUFFER_POLL_S]
    # drained: the next call includes the partition again, with Faust's timeout
    consumer.on_buffer_drop(BUSY)
    _, active = asyncio.run(consumer._wait_next_records(1.0))
    assert fetch_calls[-1] == 1.0
    assert active == {BUSY, IDLE}


def test_with_every_partition_paused_for_a_full_buffer_no_fetch_is_made(
    fetch_calls: list[float],
) -> None:
    consumer = batch_consumer()
    consumer._active_partitions = {BUSY}
    consumer.on_buffer_full(BUSY)
    assert asyncio.run(consumer._wait_next_records(1.0)) == ({}, set())
    assert fetch_calls == []


def test_the_worker_s_kafka_consumer_waits_at_most_100_ms_for_an_empty_fetch() -> None:
    consumer = batch_consumer()

    async def created() -> Any:
        thread = consumer._new_consumer_thread()
        client = thread._create_worker_consumer(cast(Any, consumer.transport))
        # Faust passes 1,500 ms; the client hands its setting to the fetcher it starts
        assert client._fetch_max_wait_ms == FETCH_MAX_WAIT_MS == 100
        await client.stop()

    asyncio.run(created())


def test_with_the_flow_stopped_faust_s_own_step_runs_and_waits_for_it(
    fetch_calls: list[float],
) -> None:
    consumer = batch_consumer()
    consumer._active_partitions = {BUSY}
    consumer.on_buffer_full(BUSY)
    consumer.flow_active = False  # a rebalance: Faust's step waits for the flow to resume
    asyncio.run(consumer._wait_next_records(1.0))
    assert fetch_calls == [BatchConsumer.FULL_BUFFER_POLL_S]
