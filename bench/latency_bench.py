"""Worker latency at a steady rate, and its memory with a large watchlist.

1. Latency: detections published at a steady rate (default 2,000/s for 60 s,
   one in 50 a watchlist face) with ``captured_at`` = the wall clock at
   publication; for every alert, captured_at -> the broker's append time on
   the alerts topic (LogAppendTime), so the figure covers publication,
   consumption, batching, matching and the produce round trip. p50/p99/max.
2. Memory: the worker's RSS (from /proc) once it holds a 20,000 x 512
   watchlist (and, as ``memory25``, 25 of them at 25 sites) and has matched a
   batch of detections against it, beside the matrices' own size.

Run: ``.venv/bin/python bench/latency_bench.py`` (needs Kafka at
LFR_KAFKA_BOOTSTRAP); writes bench/results/worker_latency.json.
Environment: LFR_BENCH_RATE, LFR_BENCH_SECONDS, LFR_BENCH_LATENCY_WATCHLIST,
LFR_BENCH_MEMORY_WATCHLIST, LFR_BENCH_PARTS (pipeline,memory,memory25 by default;
``latency`` runs the worker alone, ``pipeline`` adds the sink in this process and
measures each detection's publication to its scan row in ClickHouse; memory25
holds 25 watchlists of that size, 500,000 templates with the default).
"""

from __future__ import annotations

import os
import platform
import sys
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTopicPartition
from worker_bench import (
    cleanup,
    reference_producer,
    scan_timestamps,
    send_reference,
    settings_for,
    stamp_on_append,
    start_worker,
    stop_worker,
    unit_rows,
    write_results,
)

from common.settings import Settings
from schemas.codec import decode, encode
from schemas.templates import template_to_bytes
from streams.topics import create_topics

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "worker_latency.json"
HIT_EVERY = 50


def publish_reference_now(settings: Settings, watchlist: np.ndarray, lists: int = 1) -> None:
    """Windows that began an hour ago and their watchlists, built half an hour before them.

    Site S1 uses ``watchlist``; with ``lists`` > 1, sites S2... each get a
    watchlist of the same size of their own (other random rows).
    """
    producer = reference_producer(settings)
    now = datetime.now(UTC)
    for n in range(1, lists + 1):
        rows = watchlist if n == 1 else unit_rows(np.random.default_rng(n), len(watchlist))
        send_reference(
            producer, settings, rows, now - timedelta(hours=1), built_before=timedelta(minutes=30),
            site_id=f"S{n}", watchlist_id=f"W{n}",
        )  # fmt: skip
    producer.close()


class Publisher:
    """Detections at a steady rate, captured_at = now, in 10 ms ticks (S1, or round robin)."""

    def __init__(
        self, settings: Settings, watchlist: np.ndarray, sites: list[str] | None = None
    ) -> None:
        self.settings = settings
        self.sites = sites or ["S1"]
        self.producer = KafkaProducer(
            bootstrap_servers=settings.bootstrap_servers, acks=1, linger_ms=2
        )
        faces = unit_rows(np.random.default_rng(7), 500)
        self.faces = [template_to_bytes(v) for v in faces]
        self.hits = [template_to_bytes(v) for v in watchlist]
        self.sent = 0
        self.achieved_rate = 0.0

    def event(self, n: int) -> bytes:
        template = self.hits[n % len(self.hits)] if n % HIT_EVERY == 0 else self.faces[n % 500]
        return encode("DetectionEvent", {
            "event_id": f"e{n}", "camera_id": "c1", "site_id": self.site(n),
            "captured_at": datetime.now(UTC), "face_quality": 0.9,
            "template": template, "template_model": "demo-512",
        })  # fmt: skip

    def site(self, n: int) -> str:
        """The site of detection ``n`` (round robin)."""
        return self.sites[n % len(self.sites)]

    def run(self, rate: float, seconds: float, first: int = 0) -> None:
        """Publish ``rate`` per second for ``seconds`` (numbered from ``first``)."""
        tick = 0.01
        per_tick = rate * tick
        started = time.monotonic()
        n = first
        while (elapsed := time.monotonic() - started) < seconds:
            due = per_tick * (int(elapsed / tick) + 1)
            while n - first < due:
                topic = self.settings.topic_detections
                self.producer.send(topic, key=self.site(n).encode(), value=self.event(n))
                n += 1
            time.sleep(max(0.0, started + (int(elapsed / tick) + 1) * tick - time.monotonic()))
        self.producer.flush()
        self.sent = n - first
        self.achieved_rate = self.sent / (time.monotonic() - started)


def alert_latencies_ms(settings: Settings, expected: int, timeout: float) -> dict[int, int]:
    """Detection number -> captured_at to alert appended, in ms."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, group_id=None,
        enable_auto_commit=False, auto_offset_reset="earliest",
    )  # fmt: skip
    parts = consumer.partitions_for_topic(settings.topic_alerts) or set()
    consumer.assign([KTopicPartition(settings.topic_alerts, p) for p in parts])
    latencies: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    while len(latencies) < expected and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=1000).values():
            for m in batch:
                alert = decode("Alert", m.value)
                captured = alert["captured_at"]
                captured_ms = (
                    captured if isinstance(captured, int) else int(captured.timestamp() * 1000)
                )
                latencies[int(alert["event_id"][1:])] = m.timestamp - captured_ms
    consumer.close()
    return latencies


class RowClock:
    """The sink's batch writer, noting for each scan row inserted: now - captured_at (ms).

    The publisher sets captured_at to the wall clock at publication, so this is
    a detection's publication to its scan row in ClickHouse: worker and sink.
    """

    def __init__(self, writer: Any, since_ms: list[float]) -> None:
        self.inner = writer
        self.since_ms = since_ms  # [start of the steady phase], set once it starts
        self.latencies_ms: list[float] = []

    def write(self, batch: Any) -> Any:
        outcome = self.inner.write(batch)
        now_ms = time.time() * 1000
        if self.inner.routes[batch.topic].table == "scans" and self.since_ms:
            since = self.since_ms[0]
            self.latencies_ms.extend(now_ms - c for c in outcome.captured_ms if c >= since)
        return outcome


def start_sink(settings: Settings, since_ms: list[float]) -> tuple[Any, threading.Event, Any]:
    """The sink (``lfr sink``'s defaults) in a thread over a fresh database; its row clock."""
    from sinks.db import NativeDatabase
    from sinks.migrate import migrate
    from sinks.sink import Sink, SinkOptions, consumer_config

    db = NativeDatabase(**settings.clickhouse_config() | {"database": "default"})
    migrate(db, settings.clickhouse_database)
    options = SinkOptions(rollup_interval_s=1e9, retention_interval_s=0)
    consumer = KafkaConsumer(group_id=f"{settings.app_id}-sink", **consumer_config(options),
                             **settings.kafka_python_config())  # fmt: skip
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    sink = Sink(settings, db, consumer, producer, options)
    clock = RowClock(sink.writer, since_ms)
    sink.writer = clock  # type: ignore[assignment]
    stop = threading.Event()
    thread = threading.Thread(target=sink.run, args=(stop,), daemon=True)
    thread.start()

    def close() -> None:
        stop.set()
        thread.join(timeout=60)
        consumer.close()
        producer.close()
        db.execute(f"DROP DATABASE IF EXISTS {settings.clickhouse_database}")

    return clock, stop, close


def latency(
    rate: float, seconds: float, watchlist_size: int, with_sink: bool = False
) -> dict[str, Any]:
    """Alert latency at a steady rate; with ``with_sink``, detection -> scan row too."""
    tag = uuid.uuid4().hex[:8]
    settings = settings_for(tag).model_copy(update={"clickhouse_database": f"lfr_bench_{tag}"})
    create_topics(settings)
    stamp_on_append(settings, settings.topic_alerts)
    stamp_on_append(settings, settings.topic_scans)
    watchlist = unit_rows(np.random.default_rng(1), watchlist_size)
    publish_reference_now(settings, watchlist)
    publisher = Publisher(settings, watchlist)
    proc, log = start_worker(settings)
    since_ms: list[float] = []
    clock, _, close_sink = start_sink(settings, since_ms) if with_sink else (None, None, None)
    try:
        # warm-up until the worker answers with scans: start-up is not latency
        warm = 200
        publisher.run(rate=warm, seconds=1.0)
        if len(scan_timestamps(settings, warm, timeout=300)) < warm:
            raise RuntimeError(f"the worker never answered; see {log.name}")
        first = publisher.sent
        since_ms.append(float(time.time_ns() // 1_000_000))  # captured_at is whole ms
        thread = threading.Thread(target=publisher.run, args=(rate, seconds, first))
        thread.start()
        thread.join()
        steady = publisher.sent
        # every HIT_EVERY-th detection is a watchlist face
        expected = len(range(0, first + steady, HIT_EVERY))
        latencies = alert_latencies_ms(settings, expected, timeout=120)
        # only the steady phase: alerts of detections published after the warm-up
        steady_latencies = [ms for n, ms in latencies.items() if n >= first]
        if clock is not None:
            deadline = time.monotonic() + 120
            while len(clock.latencies_ms) < steady and time.monotonic() < deadline:
                time.sleep(0.5)
    finally:
        stop_worker(proc, log)
        if close_sink is not None:
            close_sink()
        cleanup(settings)
    values = np.array(steady_latencies, dtype=float)
    result = {
        "rate_per_second": rate, "seconds": seconds, "watchlist": f"{watchlist_size} x 512",
        "published": steady, "alerts": len(values), "published_per_second": publisher.achieved_rate,
        "p50_ms": float(np.percentile(values, 50)), "p99_ms": float(np.percentile(values, 99)),
        "max_ms": float(values.max()),
    }  # fmt: skip
    if clock is not None:
        rows = np.array(clock.latencies_ms, dtype=float)
        result["detection_to_scan_row"] = {
            "rows": len(rows), "p50_ms": float(np.percentile(rows, 50)),
            "p99_ms": float(np.percentile(rows, 99)), "max_ms": float(rows.max()),
            "sink": "in this process, lfr sink's defaults (linger 1 s, 5,000 offsets a batch)",
        }  # fmt: skip
    return result


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def memory(watchlist_size: int, lists: int = 1) -> dict[str, Any]:
    """The worker's RSS once it holds ``lists`` watchlists of ``watchlist_size`` x 512."""
    settings = settings_for(uuid.uuid4().hex[:8])
    create_topics(settings)
    stamp_on_append(settings, settings.topic_scans)
    watchlist = unit_rows(np.random.default_rng(1), watchlist_size)
    publish_reference_now(settings, watchlist, lists)
    # faces at every site, so that every watchlist's matrix is built and used
    publisher = Publisher(settings, watchlist[:100], sites=[f"S{n}" for n in range(1, lists + 1)])
    proc, log = start_worker(settings)
    started = time.monotonic()
    try:
        ready_url = f"http://127.0.0.1:{settings.worker_metrics_port}/readyz"
        deadline = time.monotonic() + 600 + 60 * lists
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(ready_url, timeout=2):  # noqa: S310
                    break
            except OSError:
                time.sleep(1)
        ready_s = round(time.monotonic() - started, 1)
        ready_rss = rss_bytes(proc.pid)
        publisher.run(rate=1000, seconds=2.0)
        if len(scan_timestamps(settings, publisher.sent, timeout=300)) < publisher.sent:
            raise RuntimeError(f"the worker did not scan every detection; see {log.name}")
        matched_rss = rss_bytes(proc.pid)
    finally:
        stop_worker(proc, log)
        cleanup(settings)
    return {
        "watchlists": lists, "watchlist": f"{watchlist_size} x 512",
        "matrix_bytes": lists * watchlist_size * 512 * 4, "seconds_to_ready": ready_s,
        "rss_ready_bytes": ready_rss, "rss_after_matching_bytes": matched_rss,
        "rss_after_matching_mb": round(matched_rss / 2**20, 1),
    }  # fmt: skip


def main() -> int:
    parts = os.environ.get("LFR_BENCH_PARTS", "pipeline,memory,memory25").split(",")
    result: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_1m": os.getloadavg()[0]},
    }  # fmt: skip
    if "latency" in parts or "pipeline" in parts:
        result["latency"] = latency(
            rate=float(os.environ.get("LFR_BENCH_RATE", "2000")),
            seconds=float(os.environ.get("LFR_BENCH_SECONDS", "60")),
            watchlist_size=int(os.environ.get("LFR_BENCH_LATENCY_WATCHLIST", "10")),
            with_sink="pipeline" in parts,
        )
    size = int(os.environ.get("LFR_BENCH_MEMORY_WATCHLIST", "20000"))
    if "memory" in parts:
        result["memory"] = memory(size)
    if "memory25" in parts:
        result["memory_25_watchlists"] = memory(size, lists=25)
    write_results(RESULTS, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
