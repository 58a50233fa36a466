"""Sink throughput for scans beside a raw clickhouse-driver columnar insert of the same rows.

Run (needs the local Kafka and ClickHouse):
    .venv/bin/python bench/sink_bench.py [--rows 100000] [--batch-size 5000]

The sink figure is end to end: Kafka fetch, Avro decode, row mapping, columnar
insert, offset commit. The raw figure inserts the already-mapped columns with
clickhouse-driver in blocks of the same size: the ceiling the sink's own work
is measured against. Writes bench/results/sink.json.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer  # noqa: E402
from kafka.admin import NewTopic  # noqa: E402
from prometheus_client import REGISTRY  # noqa: E402

from common.settings import Settings  # noqa: E402
from schemas.codec import encode  # noqa: E402
from sinks import rows as R  # noqa: E402
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


def main() -> int:
    """Run both measurements and write the result file."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "sink.json")
    parser.add_argument("--profile", type=Path, default=None,
                        help="Write cProfile stats of the sink phase to this file.")  # fmt: skip
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

        result = {
            "rows": len(scans),
            "batch_size": args.batch_size,
            "clickhouse_version": db.features.version_text,
            "sink_seconds": round(sink_s, 3),
            "sink_rows_per_s": round(len(scans) / sink_s),
            # CPU of this process (all its threads) while the sink ran
            "sink_cpu_seconds": round(sink_cpu_s, 3),
            # of which waiting for ClickHouse inserts (the sink's own histogram)
            "sink_insert_seconds": round(
                REGISTRY.get_sample_value(
                    "lfr_sink_insert_duration_seconds_sum", {"table": "scans"}
                )
                or 0,
                3,
            ),
            "raw_columnar_seconds": round(raw_s, 3),
            "raw_columnar_runs_seconds": [round(s, 3) for s in raw_runs],
            "raw_columnar_rows_per_s": round(len(scans) / raw_s),
            "sink_to_raw_ratio": round(raw_s / sink_s, 3),
            "kafka_crc32c": "C (crc32c package)" if crc32c_native() else "pure Python",
            "note": "sink = Kafka fetch + Avro decode + mapping + columnar insert + commit; "
            "raw = columnar insert of the already-mapped rows, same block size (median of 3 runs)",
        }
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
