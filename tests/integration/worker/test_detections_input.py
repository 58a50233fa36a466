"""lfr.detections reaches the worker through the batch source, and Faust still commits it.

The detections input is not a Faust agent: its records are taken out of each
fetch and acknowledged through Faust's commit bookkeeping once their batch's
outputs are on the broker. These tests run the real worker: its commits reach
the end of the topic, across a rebalance to a second worker and back, and
each graceful stop exits cleanly.
"""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, TopicPartition

from streams.worker.runtime.inputs import partition_of
from tests.conftest import free_port

from ...unit.worker.conftest import unit, window_record
from .conftest import WorkerHarness
from .test_pipeline import DIM, detection, metric, publish_setup

pytestmark = pytest.mark.integration


def two_partition_sites(partitions: int) -> list[str]:
    """One site per detections partition (the worker's key is the site id)."""
    sites: dict[int, str] = {}
    n = 0
    while len(sites) < partitions:
        sites.setdefault(partition_of(f"S{n}", partitions), f"S{n}")
        n += 1
    return [sites[p] for p in range(partitions)]


def offsets(h: WorkerHarness) -> tuple[dict[int, int | None], dict[int, int]]:
    """(committed offset of the worker group, end offset) per detections partition."""
    s = h.settings
    consumer = KafkaConsumer(
        bootstrap_servers=s.bootstrap_servers, group_id=s.app_id, enable_auto_commit=False
    )
    try:
        tps = [TopicPartition(s.topic_detections, p) for p in range(s.partitions)]
        ends = {tp.partition: end for tp, end in consumer.end_offsets(tps).items()}
        return {tp.partition: consumer.committed(tp) for tp in tps}, ends
    finally:
        consumer.close()


def wait_committed(h: WorkerHarness, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    committed, ends = offsets(h)
    while time.monotonic() < deadline:
        committed, ends = offsets(h)
        if committed == ends:
            return
        time.sleep(0.5)
    pytest.fail(f"committed {committed}, end {ends}\n" + h.log_text()[-3000:])


def test_detections_are_committed_across_a_rebalance_and_graceful_stops(
    harness: WorkerHarness,
) -> None:
    h, s = harness, harness.settings
    sites = two_partition_sites(s.partitions)
    publish_setup(h, 3)
    for site in set(sites) - {"S1"}:  # publish_setup gave S1 its window
        h.send(s.topic_operations, site, "OperationWindow",
               window_record(site_id=site, deployment_id=f"D-{site}"))  # fmt: skip
    h.flush()
    published: list[str] = []

    def publish(count: int) -> None:
        for _ in range(count):
            n = len(published)
            site = sites[n % len(sites)]
            h.send(s.topic_detections, site, "DetectionEvent",
                   detection(f"e{n}", unit(100_000 + n, DIM), site_id=site))  # fmt: skip
            published.append(f"e{n}")
        h.flush()

    def all_scanned() -> None:
        scans = h.wait_for(
            s.topic_scans, "Scan", lambda r: {x["event_id"] for x in r} >= set(published),
            timeout=180,
        )  # fmt: skip
        assert {x["event_id"] for x in scans} == set(published)

    publish(1000)
    first = h.start_worker("--max-batch", "20")
    h.wait_ready()
    all_scanned()
    # a second worker joins: the partitions are shared out between the two
    original = h.settings
    h.settings = original.model_copy(
        update={"worker_metrics_port": free_port(), "state_dir": original.state_dir / "second"}
    )
    second = h.start_worker("--max-batch", "20")
    h.wait_ready()
    for _ in range(10):  # over a few seconds: the group may still be rebalancing
        publish(100)
        time.sleep(0.5)
    all_scanned()
    taken = metric(h, 'lfr_worker_records_in_total{stage="detections"}')
    assert taken > 0, "the second worker took no detection\n" + h.log_text()[-3000:]
    wait_committed(h)
    # the second leaves gracefully: the first takes its partition back
    second.terminate()
    assert second.wait(timeout=60) == 0, h.log_text()[-3000:]
    h.settings = original
    h.procs.remove(second)
    publish(1000)
    all_scanned()
    wait_committed(h)
    first.terminate()
    assert first.wait(timeout=60) == 0, h.log_text()[-3000:]
    committed, ends = offsets(h)
    assert committed == ends and sum(ends.values()) == len(published) == 3000
