"""A minimal Faust app runs on the real broker: kafka-python in, Faust, kafka-python out."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer

from tests.conftest import Stack

pytestmark = pytest.mark.integration

APP = Path(__file__).with_name("faust_echo_app.py")


def test_faust_app_round_trip(
    real_stack: Stack, kafka_topic: Callable[..., str], tmp_path: Path
) -> None:
    source, sink = kafka_topic("faust-in"), kafka_topic("faust-out")
    env = {
        **os.environ,
        "LFR_TEST_BOOTSTRAP": real_stack.bootstrap,
        "LFR_TEST_APP": f"lfr-echo-{uuid.uuid4().hex[:8]}",
        "LFR_TEST_IN": source,
        "LFR_TEST_OUT": sink,
    }
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                str(APP),
                "--datadir",
                str(tmp_path / "data"),
                "worker",
                "--loglevel",
                "warn",
                "--without-web",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        sent = {f"k{i}".encode(): f"hello {i}".encode() for i in range(25)}
        producer = KafkaProducer(bootstrap_servers=real_stack.bootstrap, acks="all")
        for key, value in sent.items():
            producer.send(source, key=key, value=value)
        producer.flush()
        producer.close()

        consumer = KafkaConsumer(
            sink,
            bootstrap_servers=real_stack.bootstrap,
            auto_offset_reset="earliest",
            consumer_timeout_ms=60_000,
        )
        got = {}
        for message in consumer:
            got[message.key] = message.value
            if len(got) == len(sent):
                break
        consumer.close()
        assert got == {k: v.upper() for k, v in sent.items()}, log_path.read_text()[-2000:]
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
