"""The lag probe on a real broker: exact while it answers, unknown (never 0) while it does not."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.settings import Settings
from streams.kafka_lag import LagProbe, LagUnknown
from streams.localstack.kafka import KafkaService
from tests.conftest import Stack, free_port, unique

pytestmark = pytest.mark.integration

# the jars the session's stack downloaded (Maven is not asked again)
JAR_CACHE = Path(".lfr/kafka-lib")


def _produce(bootstrap: str, topic: str, counts: dict[int, int]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for partition, n in counts.items():
        for i in range(n):
            producer.send(topic, value=b"%d" % i, partition=partition)
    producer.flush()
    producer.close()


def _commit(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    tps = {p: TopicPartition(topic, p) for p in offsets}
    consumer.assign(list(tps.values()))
    consumer.commit({tps[p]: OffsetAndMetadata(o, "", -1) for p, o in offsets.items()})
    consumer.close()


def test_lag_counts_from_the_committed_offsets(real_stack: Stack, kafka_topic: object) -> None:
    topic = kafka_topic("lag", partitions=2)  # type: ignore[operator]
    group = unique("lag-group")
    _produce(real_stack.bootstrap, topic, {0: 5, 1: 3})
    probe = LagProbe(real_stack.settings)
    try:
        assert probe.group_lag(group, [topic]) == {(topic, 0): 5, (topic, 1): 3}
        _commit(real_stack.bootstrap, group, topic, {0: 4})
        assert probe.group_lag(group, [topic]) == {(topic, 0): 1, (topic, 1): 3}
        with pytest.raises(LagUnknown, match="no partitions known"):
            probe.group_lag(group, [topic, unique("never-created")])
    finally:
        probe.close()


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[KafkaService]:
    """A broker of this test alone, on free ports, that it may stop and restart."""
    if not (JAR_CACHE / "").exists():
        pytest.skip("no cached Kafka jars (.lfr/kafka-lib): run `lfr stack up` once")
    state = tmp_path / "state"
    state.mkdir()
    (state / "kafka-lib").symlink_to(JAR_CACHE.resolve())
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}",
                        kafka_controller_port=free_port(), state_dir=state)  # fmt: skip
    broker = KafkaService(settings)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def _first_known(probe: LagProbe, group: str, topic: str, timeout_s: float = 60) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return sum(probe.group_lag(group, [topic]).values())
        except LagUnknown:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.mark.slow
def test_a_broker_that_is_away_or_restarting_never_reads_as_caught_up(
    private_broker: KafkaService,
) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    settings = private_broker.settings
    topic, group = "lag-restart", "lag-restart-group"
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    admin.create_topics([NewTopic(topic, 3, 1)])
    admin.close()
    _produce(settings.kafka_bootstrap, topic, {0: 40, 1: 30, 2: 20})
    probe = LagProbe(settings)
    try:
        # a fresh broker creates its offsets topic first: unknown until then
        assert _first_known(probe, group, topic) == 90
        private_broker.stop()
        with pytest.raises(LagUnknown):
            probe.group_lag(group, [topic])
        private_broker.start()
        # while the restarted broker settles, every answer is unknown or the true 90
        # (watched for 20 s at least, and on a loaded machine until it has settled)
        answers: list[int | str] = []
        started = time.monotonic()
        while time.monotonic() - started < 20 or (
            answers[-1] != 90 and time.monotonic() - started < 90
        ):
            try:
                answers.append(sum(probe.group_lag(group, [topic]).values()))
            except LagUnknown:
                answers.append("unknown")
            time.sleep(0.2)
        assert set(answers) <= {90, "unknown"}, answers
        assert answers[-1] == 90, answers
    finally:
        probe.close()


def offsets_partition(group: str, partitions: int) -> int:
    """The ``__consumer_offsets`` partition (so the coordinator) of ``group``: Kafka takes
    Java's ``String.hashCode`` of the group id, sign bit cleared, modulo the partitions."""
    h = 0
    for char in group:
        h = (31 * h + ord(char)) & 0xFFFFFFFF
    return (h & 0x7FFFFFFF) % partitions


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_the_probe_follows_a_group_coordinator_that_moved(tmp_path: Path) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    from streams.localstack import stack
    from streams.localstack.topology import Topology
    from tests.integration.stack.private_stack import private_stack

    three = Topology(brokers=3)
    with private_stack(tmp_path / "stack", three, services=("kafka",)) as cluster:
        settings = cluster.stack_settings
        bootstrap = ",".join(settings.bootstrap_servers)
        topic = "lag-failover"
        admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
        admin.create_topics([NewTopic(topic, 2, 3)])
        _produce(bootstrap, topic, {0: 30, 1: 20})
        _commit(bootstrap, "lag-warm-up", topic, {0: 1})  # creates the offsets topic
        (offsets,) = admin.describe_topics(["__consumer_offsets"])
        admin.close()
        leaders = {p["partition_index"]: p["leader_id"] for p in offsets["partitions"]}
        victim = stack.services(settings, three)[1]  # node.id 2
        group = next(
            g for g in (f"lag-failover-{i}" for i in range(1000))
            if leaders[offsets_partition(g, len(leaders))] == 2
        )  # fmt: skip
        _commit(bootstrap, group, topic, {0: 10, 1: 5})
        probe = LagProbe(settings)
        try:
            # the probe learns that node 2 coordinates the group...
            assert probe.group_lag(group, [topic]) == {(topic, 0): 20, (topic, 1): 15}
            pid = victim.pid_file.read()
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            # ...which moves to a live broker once node 2 is fenced (9 s): the probe
            # must ask again rather than keep asking the dead node. Right after the
            # move the new coordinator may answer with no offsets for a moment (the
            # probe then counts from the beginning: 50, never less than the truth)
            answers: list[int | str] = []
            deadline = time.monotonic() + 120
            while not answers or answers[-1] != 35:
                assert time.monotonic() < deadline, f"the true lag never came back: {answers}"
                try:
                    answers.append(sum(probe.group_lag(group, [topic]).values()))
                except LagUnknown:
                    answers.append("unknown")
                    time.sleep(0.5)
            assert set(answers) <= {35, 50, "unknown"}, answers
        finally:
            probe.close()
