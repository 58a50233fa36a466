"""``lfr worker`` with its detections agent fed by the batch source (a bench launcher).

The worker's ``detections`` agent body is kept as it is; only its input
changes: instead of Faust's ``stream.take_events``, a stand-in stream yields
the batches that :func:`streams.worker.runtime.batch_source.install_batch_handler`
hands over, and a batch is acknowledged once the agent asks for the next
one (its guard returned). This measures what the batch path gives the real
detections work before the agent is rewritten for it; the events it builds
(two small objects per record) are a cost that rewrite removes.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import faust

from common.settings import Settings
from streams.cli import main
from streams.worker.runtime.batch_source import install_batch_handler
from streams.worker.source import SourceRecord


class Message:
    """The part of a Faust message the detections agent and its guard read."""

    __slots__ = ("topic", "partition", "offset", "key", "value", "timestamp", "tp")

    def __init__(self, record: SourceRecord) -> None:
        self.topic = record.topic
        self.partition = record.partition
        self.offset = record.offset
        self.key = record.key
        self.value = record.value
        self.timestamp = record.timestamp_ms / 1000
        self.tp = (record.topic, record.partition)

    def incref(self) -> None:
        """Pinning is moot: nothing is acknowledged unless the batch returns."""


class Event:
    __slots__ = ("message",)

    def __init__(self, record: SourceRecord) -> None:
        self.message = Message(record)


class Feed:
    """Stands in for the agent's stream: ``take_events`` yields the source's batches."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[list[Event], asyncio.Future[None]]] = asyncio.Queue(1)

    async def take_events(self, max_: int, within: float) -> AsyncIterator[list[Event]]:
        while True:
            events, done = await self.queue.get()
            yield events
            done.set_result(None)  # the agent came back for more: the batch is done

    async def handle(self, records: list[SourceRecord]) -> None:
        done = asyncio.get_running_loop().create_future()
        await self.queue.put(([Event(r) for r in records], done))
        await done


original_agent = faust.App.agent


def agent(self: faust.App, channel: Any = None, *, name: str | None = None, **kw: Any) -> Any:
    if name != "detections":
        return original_agent(self, channel, name=name, **kw)

    def install(body: Callable[[Any], Awaitable[None]]) -> Any:
        feed = Feed()
        max_batch = Settings().worker_max_batch
        install_batch_handler(self, channel.get_topic_name(), feed.handle, max_batch=max_batch)

        async def run_agent() -> None:
            await body(feed)

        self.task(run_agent)
        return body

    return install


faust.App.agent = agent  # type: ignore[method-assign]  # the input under test

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
