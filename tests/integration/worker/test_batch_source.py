"""The batch source on the real broker: every record once and in order, no commit past a
failure, and a complete union across a rebalance between two instances."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from tests.conftest import Stack, stop_process, unique

pytestmark = pytest.mark.integration
LAUNCHER = "tests.integration.worker.batch_app"
ROOT = Path(__file__).resolve().parents[3]


class BatchApps:
    """Starts batch_app instances on one topic and one group; reads what they handled."""

    def __init__(self, stack: Stack, topic: str, partitions: int, tmp_path: Path) -> None:
        self.bootstrap = stack.bootstrap
        self.topic = topic
        self.partitions = partitions
        self.app_id = unique("lfr-batch")
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[bytes]] = []
        self.outs: list[Path] = []
        self.producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all")

    def start(self, **env: str) -> int:
        """Start one instance; returns its index (its out file is ``self.outs[index]``)."""
        n = len(self.procs)
        out = self.tmp_path / f"handled-{n}.txt"
        out.touch()
        state = self.tmp_path / f"state-{n}"
        state.mkdir()
        full_env = {
            **os.environ, "PYTHONPATH": str(ROOT), "BATCH_BOOTSTRAP": self.bootstrap,
            "BATCH_APP_ID": self.app_id, "BATCH_TOPIC": self.topic,
            "BATCH_PARTITIONS": str(self.partitions), "BATCH_STATE": str(state),
            "BATCH_OUT": str(out), **env,
        }  # fmt: skip
        log = open(self.tmp_path / f"app-{n}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [sys.executable, "-m", LAUNCHER, "worker", "--without-web"],
            cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.procs.append(proc)
        self.outs.append(out)
        return n

    def log_text(self, n: int) -> str:
        return (self.tmp_path / f"app-{n}.log").read_text(errors="replace")

    def produce(self, values: list[str], key_count: int = 40) -> None:
        for i, value in enumerate(values):
            self.producer.send(self.topic, key=f"k{i % key_count}".encode(), value=value.encode())
        self.producer.flush()

    def handled(self, n: int) -> list[tuple[int, int, str]]:
        rows = []
        for line in self.outs[n].read_text().splitlines():
            partition, offset, value = line.split(" ", 2)
            rows.append((int(partition), int(offset), value))
        return rows

    def all_handled(self) -> list[tuple[int, int, str]]:
        return [row for n in range(len(self.outs)) for row in self.handled(n)]

    def committed(self) -> dict[int, int | None]:
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=self.app_id,
                                 enable_auto_commit=False)  # fmt: skip
        try:
            return {
                p: consumer.committed(TopicPartition(self.topic, p)) for p in range(self.partitions)
            }
        finally:
            consumer.close()

    def end_offsets(self) -> dict[int, int]:
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap)
        try:
            tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
            return {tp.partition: end for tp, end in consumer.end_offsets(tps).items()}
        finally:
            consumer.close()

    def close(self) -> None:
        for proc in self.procs:
            stop_process(proc)
        self.producer.close()


def ascending_runs(offsets: list[int]) -> list[list[int]]:
    """``offsets`` cut wherever one is not above the one before (a redelivery)."""
    runs: list[list[int]] = []
    for offset in offsets:
        if runs and offset > runs[-1][-1]:
            runs[-1].append(offset)
        else:
            runs.append([offset])
    return runs


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def batch_apps(
    real_stack: Stack, kafka_topic: Callable[..., str], tmp_path: Path
) -> Iterator[Callable[[int], BatchApps]]:
    made: list[BatchApps] = []

    def make(partitions: int) -> BatchApps:
        apps = BatchApps(real_stack, kafka_topic("batch", partitions), partitions, tmp_path)
        made.append(apps)
        return apps

    yield make
    for apps in made:
        apps.close()


def test_every_record_once_in_order_then_committed(batch_apps: Callable[[int], BatchApps]) -> None:
    apps = batch_apps(3)
    apps.produce([f"v{i}" for i in range(3000)])
    ends = apps.end_offsets()
    n = apps.start()
    wait_until(lambda: len(apps.handled(n)) >= 3000, 120, "3000 handled records")
    stop_process(apps.procs[n])
    handled = apps.handled(n)
    assert len(handled) == 3000, "a record was handled twice"
    for p in range(3):
        offsets = [offset for partition, offset, _ in handled if partition == p]
        assert offsets == list(range(ends[p])), f"partition {p} not complete and in order"
    assert sorted(v for _, _, v in handled) == sorted(f"v{i}" for i in range(3000))
    # a clean stop commits every acknowledged batch
    assert apps.committed() == ends


def test_a_failing_batch_is_never_committed_and_comes_again(
    batch_apps: Callable[[int], BatchApps],
) -> None:
    apps = batch_apps(1)
    apps.produce([f"v{i}" for i in range(500)])
    apps.produce(["poison"])
    apps.produce([f"w{i}" for i in range(500)])
    poison_offset = 500
    first = apps.start(BATCH_FAIL="poison")
    wait_until(lambda: "batch handler for" in apps.log_text(first), 120, "the injected failure")
    time.sleep(2)  # several commit intervals: a wrong commit would have happened by now
    stop_process(apps.procs[first])
    committed = apps.committed()[0]
    assert committed is not None and committed <= poison_offset
    handled_before = apps.handled(first)
    assert all(offset < poison_offset for _, offset, _ in handled_before)
    second = apps.start()
    wait_until(lambda: any(v == "w499" for _, _, v in apps.handled(second)), 120, "the rest")
    again = apps.handled(second)
    assert (0, poison_offset, "poison") in again
    offsets = [o for _, o, _ in again]
    # at least once: everything from the committed offset on, in order; a seek
    # back to the committed offset at start-up may deliver a run again
    assert sorted(set(offsets)) == list(range(committed, 1001))
    assert all(run == list(range(run[0], run[0] + len(run))) for run in ascending_runs(offsets))
    assert min(offsets) >= committed


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
def test_two_instances_handle_the_union_across_rebalances(
    batch_apps: Callable[[int], BatchApps], stop: str
) -> None:
    apps = batch_apps(4)
    apps.produce([f"a{i}" for i in range(2000)])
    first = apps.start(BATCH_DELAY_S="0.05")
    wait_until(lambda: len(apps.handled(first)) >= 200, 120, "the first instance to start")
    second = apps.start(BATCH_DELAY_S="0.05")
    produced = [f"a{i}" for i in range(2000)]
    deadline = time.monotonic() + 120
    while not apps.handled(second):  # records keep coming while the group rebalances
        assert time.monotonic() < deadline, "the second instance never got a batch"
        more = [f"b{len(produced) + i}" for i in range(100)]
        apps.produce(more)
        produced += more
        time.sleep(0.5)
    more = [f"c{i}" for i in range(2000)]
    apps.produce(more)
    if stop == "SIGKILL":  # its uncommitted records go to the second instance
        apps.procs[first].kill()
        apps.procs[first].wait()
    else:  # it commits what it acknowledged and leaves the group
        stop_process(apps.procs[first])
    produced += more + [f"d{i}" for i in range(2000)]
    apps.produce(produced[-2000:])
    ends = apps.end_offsets()
    expected = {(p, o) for p, end in ends.items() for o in range(end)}
    wait_until(lambda: {(p, o) for p, o, _ in apps.all_handled()} >= expected, 180,
               "every record handled by one instance or the other")  # fmt: skip
    handled = apps.all_handled()
    assert {(p, o) for p, o, _ in handled} == expected
    values = {v for _, _, v in handled}
    assert values == set(produced)
    for n, other in ((first, second), (second, first)):
        theirs = {(p, o) for p, o, _ in apps.handled(other)}
        for p in range(4):
            offsets = [o for q, o, _ in apps.handled(n) if q == p]
            for a, b in zip(offsets, offsets[1:], strict=False):
                # in order; or back to the commit after a rebalance; or the partition
                # was away meanwhile and the other instance handled what lies between
                assert b == a + 1 or b <= a or all((p, o) in theirs for o in range(a + 1, b))
