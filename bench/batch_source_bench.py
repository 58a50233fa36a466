"""Three ways to consume one topic in batches, side by side on the same records.

1. ``take_events``: a Faust agent over ``stream.take_events(max_batch, within)``,
   the path the worker's detections agent takes today;
2. ``batch_source``: the same Faust app shape with
   :func:`streams.worker.runtime.batch_source.install_batch_handler` instead of the agent;
3. ``raw_aiokafka``: a hand-written aiokafka ``getmany`` loop in a consumer group,
   committing after each fetch: the ceiling.

Each handler does the same trivial work: build a :class:`SourceRecord` per record
and count. Each runs alone in its own process (one after the other, in rounds,
so a machine growing busier or quieter hits all three alike) with its own
consumer group on the same topic; the rate is from its first batch to its last.
Run: ``.venv/bin/python bench/batch_source_bench.py`` (needs Kafka at
LFR_KAFKA_BOOTSTRAP); writes bench/results/batch_source.json.
LFR_BENCH_RECORDS (default 100000), LFR_BENCH_ROUNDS (default 2), LFR_BENCH_MODES
(a subset, comma-separated: no ratios then), LFR_BENCH_FETCH_BYTES.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "batch_source.json"
MODES = ("take_events", "batch_source", "raw_aiokafka")
MAX_BATCH = 500
WITHIN_S = 0.2
PARTITIONS = 2
VALUE_BYTES = 1100  # about one encoded detection
# per partition, the same for all three (the worker's consumer_max_fetch_size by default)
FETCH_BYTES = int(os.environ.get("LFR_BENCH_FETCH_BYTES", str(8 * 1024 * 1024)))
# LFR_BENCH_PYSPY=DIR samples each child with py-spy (pip install py-spy) into DIR
PYSPY_DIR = os.environ.get("LFR_BENCH_PYSPY")
COMMIT_EVERY_S = 2.8  # Faust's default commit interval, for the raw loop too


class Meter:
    """Counts handled records; writes the rate and stops the process at the end.

    The rate leaves out the first tenth of the records: start-up, and the
    first fetch that every consumer gets at once.
    """

    def __init__(self, expected: int, out: Path, stop: Any) -> None:
        self.expected = expected
        self.out = out
        self.stop = stop
        self.count = 0
        self.warm = expected // 10
        self.mark: tuple[float, int] | None = None

    def handled(self, n: int) -> None:
        self.count += n
        if self.mark is None:
            if self.count >= self.warm:
                self.mark = (time.perf_counter(), self.count)
            return
        if self.count >= self.expected:
            started, counted = self.mark
            seconds = time.perf_counter() - started
            self.out.write_text(json.dumps({
                "records": self.count - counted, "seconds": seconds,
                "per_second": (self.count - counted) / seconds,
            }))  # fmt: skip
            self.stop()
            self.stop = lambda: None


def faust_app(mode: str, bootstrap: str, topic: str, group: str, meter: Meter) -> Any:
    import faust

    from streams.worker.runtime.batch_source import install_batch_handler
    from streams.worker.runtime.inputs import source_record
    from streams.worker.source import SourceRecord

    app = faust.App(
        group, broker=f"kafka://{bootstrap}", store="memory://",
        datadir=tempfile.mkdtemp(prefix="lfr-bench-fbatch-"), topic_partitions=PARTITIONS,
        processing_guarantee="at_least_once", stream_wait_empty=False,
        consumer_max_fetch_size=FETCH_BYTES, key_serializer="raw", value_serializer="raw",
        web_enabled=False, autodiscover=False,
    )  # fmt: skip
    if mode == "take_events":
        source = app.topic(topic, key_type=bytes, value_type=bytes)

        @app.agent(source, name="records", concurrency=1)
        async def records(stream: Any) -> None:
            async for events in cast(Any, stream).take_events(MAX_BATCH, within=WITHIN_S):
                meter.handled(len([source_record(e.message) for e in events]))

    else:

        async def handle(records: list[SourceRecord]) -> None:
            meter.handled(len(records))  # the source built the SourceRecords

        install_batch_handler(app, topic, handle, max_batch=MAX_BATCH)
    return app


async def raw_loop(bootstrap: str, topic: str, group: str, meter: Meter) -> None:
    from aiokafka import AIOKafkaConsumer

    from streams.worker.source import SourceRecord

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
        auto_offset_reset="earliest", max_partition_fetch_bytes=FETCH_BYTES,
    )  # fmt: skip
    await consumer.start()
    done = False

    def finish() -> None:
        nonlocal done
        done = True

    meter.stop = finish
    committed_at = time.monotonic()
    try:
        while not done:
            fetched = await consumer.getmany(timeout_ms=200, max_records=MAX_BATCH)
            for tp, messages in fetched.items():
                records = [
                    SourceRecord(tp.topic, tp.partition, m.offset, m.key, m.value, m.timestamp)
                    for m in messages
                ]
                meter.handled(len(records))
            if fetched and time.monotonic() - committed_at > COMMIT_EVERY_S:
                await consumer.commit()
                committed_at = time.monotonic()
        await consumer.commit()
    finally:
        await consumer.stop()


def run_one(mode: str, bootstrap: str, topic: str, expected: int, out: Path) -> None:
    """The child process: consume ``expected`` records with ``mode``."""
    group = f"lfr-bench-{mode}-{uuid.uuid4().hex[:6]}"
    if mode == "raw_aiokafka":
        asyncio.run(raw_loop(bootstrap, topic, group, Meter(expected, out, lambda: None)))
        return
    import faust

    meter = Meter(expected, out, lambda: os.kill(os.getpid(), signal.SIGTERM))
    app = faust_app(mode, bootstrap, topic, group, meter)
    worker = faust.Worker(app, loglevel=logging.WARNING, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit:
        pass


def produce(bootstrap: str, topic: str, count: int) -> None:
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20,
                             batch_size=1 << 20)  # fmt: skip
    value = os.urandom(VALUE_BYTES)
    for i in range(count):
        producer.send(topic, key=f"S{i % 16}".encode(), value=value)
    producer.flush()
    producer.close()


def delete(bootstrap: str, topic: str) -> None:
    """The bench topic and the Faust apps' internal topics (named after their groups)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    prefixes = tuple(f"lfr-bench-{mode}-" for mode in MODES)
    admin.delete_topics([t for t in admin.list_topics() if t == topic or t.startswith(prefixes)])
    admin.close()


def child(mode: str, bootstrap: str, topic: str, expected: int) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix="lfr-bench-fbatch-")) / "result.json"
    log = out.with_name("child.log")
    argv = [sys.executable, __file__, "--child", mode, bootstrap, topic, str(expected),
            str(out), "worker", "--without-web"]  # fmt: skip
    if PYSPY_DIR:
        Path(PYSPY_DIR).mkdir(parents=True, exist_ok=True)
        profile = Path(PYSPY_DIR) / f"{mode}-{out.parent.name}.txt"
        argv = [str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw",
                "--rate", "200", "--threads", "-o", str(profile), "--", *argv]  # fmt: skip
    with open(log, "wb") as sink:
        # fixed argv: this interpreter running this file (under py-spy if asked)
        proc = subprocess.run(  # noqa: S603
            argv,
            cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, timeout=900, check=False,
        )  # fmt: skip
    if not out.exists():
        raise RuntimeError(f"{mode} exited {proc.returncode} without a result; see {log}")
    return cast(dict[str, Any], json.loads(out.read_text()))


def main() -> int:
    from common.settings import Settings

    bootstrap = Settings().kafka_bootstrap
    expected = int(os.environ.get("LFR_BENCH_RECORDS", "100000"))
    rounds = int(os.environ.get("LFR_BENCH_ROUNDS", "2"))
    topic = f"lfr-bench-fbatch-{uuid.uuid4().hex[:8]}"
    result: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_1m": os.getloadavg()[0]},
        "records": expected, "partitions": PARTITIONS, "value_bytes": VALUE_BYTES,
        "fetch_bytes_per_partition": FETCH_BYTES,
        "max_batch": MAX_BATCH, "take_events_within_s": WITHIN_S,
    }  # fmt: skip
    produce(bootstrap, topic, expected)
    modes = os.environ.get("LFR_BENCH_MODES", ",".join(MODES)).split(",")
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    try:
        for _ in range(rounds):
            for mode in modes:
                runs[mode].append(child(mode, bootstrap, topic, expected))
                print(mode, runs[mode][-1], flush=True)
    finally:
        delete(bootstrap, topic)
    rates = {mode: statistics.median(r["per_second"] for r in runs[mode]) for mode in modes}
    result["runs"] = runs
    result["median_per_second"] = rates
    if set(modes) == set(MODES):
        raw = rates["raw_aiokafka"]
        result["ratio_to_raw_aiokafka"] = {mode: rates[mode] / raw for mode in MODES}
        result["ratio_batch_source_to_take_events"] = rates["batch_source"] / rates["take_events"]
    result["machine"]["load_average_1m_after"] = os.getloadavg()[0]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, mode_arg, bootstrap_arg, topic_arg, expected_arg, out_arg, *faust_argv = sys.argv
        sys.argv = [sys.argv[0], *faust_argv]
        run_one(mode_arg, bootstrap_arg, topic_arg, int(expected_arg), Path(out_arg))
        sys.exit(0)
    sys.exit(main())
