"""A minimal Faust app for the foundation test: copies IN_TOPIC to OUT_TOPIC, upper-cased.

Run as ``python faust_echo_app.py worker`` with LFR_TEST_BOOTSTRAP, LFR_TEST_APP,
LFR_TEST_IN and LFR_TEST_OUT in the environment.
"""

from __future__ import annotations

import os

import faust

app = faust.App(
    os.environ["LFR_TEST_APP"],
    broker=f"kafka://{os.environ['LFR_TEST_BOOTSTRAP']}",
    store="memory://",
    web_enabled=False,
    topic_partitions=1,
    topic_replication_factor=1,
)
source = app.topic(
    os.environ["LFR_TEST_IN"],
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
)
sink = app.topic(
    os.environ["LFR_TEST_OUT"],
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
)


@app.agent(source)
async def echo(stream: faust.StreamT[bytes]) -> None:
    async for event in stream.events():
        await sink.send(key=event.key, value=event.value.upper())


if __name__ == "__main__":
    app.main()
