"""Sink throughput for scans beside a raw clickhouse-driver columnar insert of the same rows.

Run (needs the local Kafka and ClickHouse):
    .venv/bin/python bench/sink_bench.py [--rows 100000] [--batch-size 5000]

The sink figure is end to end: Kafka fetch, Avro decode, row mapping, columnar
insert, offset commit. The raw figure inserts the already-mapped columns with
clickhouse-driver in blocks of the same size: the ceiling the sink's own work
is measured against. Beside them, where the sink's CPU goes: kafka-python
alone polling the same records with the sink's consumer settings, and decode +
mapping alone without Kafka or ClickHouse. Last, a steady phase (default
2,000 scans/s for 20 s, the sink with `lfr sink`'s defaults): p50/p99 of a
row's publication (its Kafka timestamp) to its insert returning. Writes
bench/results/sink.json.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402
from prometheus_client import REGISTRY  # noqa: E402

from common.settings import Settings  # noqa: E402
from schemas.codec import decode_millis, encode  # noqa: E402
from sinks import rows as R  # noqa: E402
from sinks.batching import Batch  # noqa: E402
from sinks.db import NativeDatabase  # noqa: E402
from sinks.migrate import migrate  # noqa: E402
from sinks.sink import Sink, SinkOptions, consumer_config  # noqa: E402
from tests.synthetic import generate  # noqa: E402


def crc32c_native() -> bool:
    """Whether kafka-python checks record CRCs with the C ``crc32c`` package."""
    try:
        import crc32c  # noqa: F401
    except ImportError:
        return False
    return True


def consume_only(settings: Settings, options: SinkOptions, expected: int) -> dict[str, Any]:
    """kafka-python alone, configured as the sink's consumer: poll every record, do nothing."""
    group = f"{settings.app_id}-consume-only"
    consumer = KafkaConsumer(group_id=group, **consumer_config(options),
                             **settings.kafka_python_config())  # fmt: skip
    consumer.subscribe([settings.topic_scans])
    count = 0
    started, cpu_started = time.perf_counter(), time.process_time()
    while count < expected:
        polled = consumer.poll(timeout_ms=options.poll_timeout_ms, max_records=options.batch_size)
        count += sum(len(records) for records in polled.values())
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    consumer.close()
    return {"seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
            "rows_per_s": round(count / seconds),
            "cpu_us_per_row": round(cpu / count * 1e6, 2)}  # fmt: skip


def aiokafka_consume_only(settings: Settings, expected: int) -> dict[str, Any]:
    """aiokafka (C record parsing) polling the same records: what another client would cost."""
    import asyncio

    from aiokafka import AIOKafkaConsumer

    async def run() -> dict[str, Any]:
        consumer = AIOKafkaConsumer(
            settings.topic_scans, bootstrap_servers=settings.bootstrap_servers,
            group_id=f"{settings.app_id}-aiokafka-only", enable_auto_commit=False,
            auto_offset_reset="earliest", fetch_max_bytes=32 * 1024 * 1024,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )  # fmt: skip
        await consumer.start()
        try:
            count = 0
            started, cpu_started = time.perf_counter(), time.process_time()
            while count < expected:
                fetched = await consumer.getmany(timeout_ms=200, max_records=5000)
                count += sum(len(records) for records in fetched.values())
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        finally:
            await consumer.stop()
        return {"seconds": round(seconds, 3), "rows_per_s": round(count / seconds),
                "cpu_us_per_row": round(cpu / count * 1e6, 2)}  # fmt: skip

    return asyncio.run(run())


def decode_and_map_only(values: list[bytes], batch_size: int) -> dict[str, Any]:
    """The sink's own per-row work without Kafka or ClickHouse: decode, map, columns."""
    started = time.process_time()
    for i in range(0, len(values), batch_size):
        rows = [R.SCANS.map_record(decode_millis("Scan", v)) for v in values[i : i + batch_size]]
        R.columnar(R.SCANS.columns, rows)
    cpu = time.process_time() - started
    return {"cpu_seconds": round(cpu, 3), "cpu_us_per_row": round(cpu / len(values) * 1e6, 2)}


class TimedSink(Sink):
    """The sink, noting for every row how long after its publication its insert returned."""

    latencies_ms: list[float]

    def after_insert(self, batch: Batch) -> None:
        now_ms = time.time() * 1000
        self.latencies_ms.extend(now_ms - m.timestamp_ms for m in batch.messages)


def steady_latency(settings: Settings, db: NativeDatabase, scans: list[dict[str, Any]],
                   rate: float, seconds: float) -> dict[str, Any]:  # fmt: skip
    """Scans published at ``rate``/s for ``seconds`` while the sink (default options) runs."""
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=2)
    # `lfr sink`'s own defaults (linger 1 s, 5,000 offsets per batch)
    options = SinkOptions(rollup_interval_s=1e9, retention_interval_s=0)
    consumer = KafkaConsumer(group_id=f"{settings.app_id}-latency", **consumer_config(options),
                             **settings.kafka_python_config())  # fmt: skip
    sink = TimedSink(settings, db, consumer, producer, options)
    sink.latencies_ms = []
    # start at the end: only rows published from now on
    sink.subscribe()
    while not consumer.assignment():
        consumer.poll(timeout_ms=200)
    consumer.seek_to_end()
    for tp in consumer.assignment():
        consumer.position(tp)  # resolve "end" now, before the first row is published
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            sink.step(stop)

    worker = threading.Thread(target=run)
    worker.start()
    sent = 0
    started = time.monotonic()
    try:
        while (elapsed := time.monotonic() - started) < seconds:
            while sent < rate * elapsed:
                scan = scans[sent % len(scans)]
                producer.send(settings.topic_scans, key=scan["site_id"].encode(),
                              value=encode("Scan", scan))  # fmt: skip
                sent += 1
            time.sleep(0.005)
        producer.flush()
        deadline = time.monotonic() + 60
        while len(sink.latencies_ms) < sent and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        worker.join()
        consumer.close()
    values = np.array(sink.latencies_ms)
    return {"rate_per_second": rate, "seconds": seconds, "published": sent,
            "inserted": len(values), "linger_s": options.linger_s,
            "p50_ms": round(float(np.percentile(values, 50))),
            "p99_ms": round(float(np.percentile(values, 99))),
            "max_ms": round(float(values.max()))}  # fmt: skip


def main() -> int:
    """Run the measurements and write the result file."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "sink.json")
    parser.add_argument("--profile", type=Path, default=None,
                        help="Write cProfile stats of the sink phase to this file.")  # fmt: skip
    parser.add_argument("--latency-rate", type=float, default=2000.0,
                        help="Scans per second in the latency phase.")  # fmt: skip
    parser.add_argument("--latency-seconds", type=float, default=20.0,
                        help="Length of the latency phase (0: skip it).")  # fmt: skip
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:8]
    topics = {f"topic_{t}": f"bench{tag}.{t}"
              for t in ("scans", "alerts", "outcomes", "operations", "dlq")}  # fmt: skip
    settings = Settings(clickhouse_database=f"lfr_bench_{tag}", app_id=f"bench-{tag}", **topics)
    db = NativeDatabase(**settings.clickhouse_config() | {"database": "default"})
    name = settings.clickhouse_database
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    admin.create_topics([NewTopic(t, 3, 1) for t in topics.values()])
    try:
        migrate(db, name)
        per = 2000
        data = generate(1, deployments=max(1, args.rows // per), scans_per_deployment=per,
                        alerts_per_deployment=0)  # fmt: skip
        scans = data.scans[: args.rows]
        producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=50,
                                 batch_size=512 * 1024)  # fmt: skip
        for scan in scans:
            producer.send(settings.topic_scans, key=scan["site_id"].encode(),
                          value=encode("Scan", scan))  # fmt: skip
        producer.flush()

        options = SinkOptions(batch_size=args.batch_size, linger_s=0.5, rollup_interval_s=1e9,
                              retention_interval_s=0)  # fmt: skip
        # the consumer exactly as `lfr sink` configures it
        consumer = KafkaConsumer(group_id=f"{settings.app_id}-sink", **consumer_config(options),
                                 **settings.kafka_python_config())  # fmt: skip
        sink = Sink(settings, db, consumer, producer, options)
        sink.subscribe()
        committed = {"topic": settings.topic_scans, "result": "inserted"}
        stop = threading.Event()
        profiler = cProfile.Profile() if args.profile else None
        started, cpu_started = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        # done when the sink has committed every row: its own counter, so that no
        # query of the bench's competes with the inserts it measures
        while (REGISTRY.get_sample_value("lfr_sink_records_total", committed) or 0) < len(scans):
            sink.step(stop)
        sink_s = time.perf_counter() - started
        sink_cpu_s = time.process_time() - cpu_started
        insert_s = (
            REGISTRY.get_sample_value("lfr_sink_insert_duration_seconds_sum", {"table": "scans"})
            or 0.0
        )
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)
        consumer.close()
        stored = db.execute(f"SELECT count() FROM {name}.scans")[0][0]  # noqa: S608 - bench db
        if stored < len(scans):
            raise RuntimeError(f"the sink committed {len(scans)} rows, the table has {stored}")

        rows = [R.SCANS.map_record(s) for s in scans]
        columns = R.SCANS.columns
        # one insert on this shared 2-core server takes 5 to 35 ms from one run to the
        # next (other work, background merges): the median of three runs is the ceiling
        raw_runs = []
        for run in range(3):
            db.execute(f"CREATE TABLE {name}.scans_raw{run} AS {name}.scans")
            started = time.perf_counter()
            for i in range(0, len(rows), args.batch_size):
                block = R.columnar(columns, rows[i : i + args.batch_size])
                db.insert(f"{name}.scans_raw{run}", columns, block)
            raw_runs.append(time.perf_counter() - started)
        raw_s = statistics.median(raw_runs)
        # where the sink's time goes: the Kafka client alone, and decode + mapping alone
        kafka_only = consume_only(settings, options, len(scans))
        aiokafka_only = aiokafka_consume_only(settings, len(scans))
        own_work = decode_and_map_only([encode("Scan", s) for s in scans], args.batch_size)
        latency = (
            steady_latency(settings, db, scans, args.latency_rate, args.latency_seconds)
            if args.latency_seconds > 0
            else None
        )

        result = {
            "rows": len(scans),
            "batch_size": args.batch_size,
            "clickhouse_version": db.features.version_text,
            "sink_seconds": round(sink_s, 3),
            "sink_rows_per_s": round(len(scans) / sink_s),
            # CPU of this process (all its threads) while the sink ran
            "sink_cpu_seconds": round(sink_cpu_s, 3),
            # of which waiting for ClickHouse inserts (the sink's own histogram)
            "sink_insert_seconds": round(insert_s, 3),
            "raw_columnar_seconds": round(raw_s, 3),
            "raw_columnar_runs_seconds": [round(s, 3) for s in raw_runs],
            "raw_columnar_rows_per_s": round(len(scans) / raw_s),
            "sink_to_raw_ratio": round(raw_s / sink_s, 3),
            "sink_cpu_us_per_row": round(sink_cpu_s / len(scans) * 1e6, 2),
            "kafka_python_consume_only": kafka_only,
            "aiokafka_consume_only": aiokafka_only,
            "decode_and_map_only": own_work,
            "kafka_crc32c": "C (crc32c package)" if crc32c_native() else "pure Python",
            "note": "sink = Kafka fetch + Avro decode + mapping + columnar insert + commit; "
            "raw = columnar insert of the already-mapped rows, same block size (median of 3 runs)",
        }
        if latency is not None:
            result["published_to_row_latency"] = latency
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
    finally:
        db.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.delete_topics(list(topics.values()))
        admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
