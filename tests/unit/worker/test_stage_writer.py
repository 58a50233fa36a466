"""The runtime writes a stage's tables only after its outputs are acknowledged.

A fake aiokafka producer stands in for Faust's (its acknowledgement is a
future the test resolves or fails); the tables are dicts with a changelog
name. What is checked is the order the at-least-once argument rests on.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from common.settings import Settings
from schemas.codec import Codec, decode
from streams.worker.runtime.outputs import StageWriter
from streams.worker.runtime.tables import Changelogs
from streams.worker.stage import OUTCOMES, Output, StageResult, TableChange

OUTCOME = {
    "alert_id": "A", "event_id": "e", "deployment_id": "D1", "site_id": "S1", "camera_id": "c1",
    "subject_ref": "r", "category": "missing", "score": 0.7, "threshold": 0.64,
    "captured_at": 1_000, "alerted_at": 1_500, "wanted_since": 0, "officer_ref": "o1",
    "verdict": "TRUE_MATCH", "confirmed": True, "outcome": "ARREST", "located_at": 2_000,
    "decided_at": 3_000, "time_to_locate_s": 2.0, "response_s": 1.0,
}  # fmt: skip


class Table(dict):  # type: ignore[type-arg]
    changelog_topic = SimpleNamespace(get_topic_name=lambda: "app-pending-changelog")


class Producer:
    """Enough of aiokafka's producer for ``send_grouped``: batches, one future each."""

    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.sent: list[tuple[str, int, list[tuple[bytes, bytes]]]] = []
        self.client = SimpleNamespace(cluster=SimpleNamespace(partitions_for_topic=lambda _t: {0}))

    def create_batch(self) -> list[tuple[bytes, bytes]]:
        return _Batch()

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> asyncio.Future[None]:
        self.sent.append((topic, partition, list(batch)))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail:
            future.set_exception(RuntimeError("broker went away"))
        else:
            future.set_result(None)
        return future


class _Batch(list):  # type: ignore[type-arg]
    def append(self, *, key: bytes, value: bytes, timestamp: int | None) -> object:  # type: ignore[override]
        super().append((key, value))
        return object()


def writer(producer: Producer, table: Table) -> StageWriter:
    app: Any = SimpleNamespace(producer=SimpleNamespace(_ensure_producer=lambda: producer))
    return StageWriter(app, Settings(), Codec(), Changelogs(app, {"pending_adjudications": table}))


RESULT = StageResult(
    outputs=[Output(OUTCOMES, OUTCOME)],
    changes=[TableChange("pending_adjudications", b"A", deleted=True)],
)


def test_tables_change_once_the_outputs_are_acknowledged() -> None:
    producer, table = Producer(fail=False), Table({b"A": {"held": True}})
    asyncio.run(writer(producer, table).write("worker.alerts", RESULT))
    ((topic, partition, [(key, value)]),) = producer.sent
    assert (topic, partition, key) == ("lfr.outcomes", 0, b"A")
    assert decode("Outcome", value)["outcome"] == "ARREST"
    assert table == {}


def test_a_lost_output_leaves_the_tables_as_they_were() -> None:
    producer, table = Producer(fail=True), Table({b"A": {"held": True}})
    with pytest.raises(RuntimeError, match="broker went away"):
        asyncio.run(writer(producer, table).write("worker.alerts", RESULT))
    assert table == {b"A": {"held": True}}  # the retry finds the adjudication still held
