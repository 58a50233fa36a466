"""Faults against the sink on a private stack; one row per fault: does ClickHouse equal the truth?

Run (needs Java 17, clickhouse-server and the Kafka jars cached by `lfr stack up`):
    .venv/bin/python bench/chaos.py [--scans 600] [--outage 20] [--only NAME ...]

Starts its own Kafka broker and ClickHouse server on free ports (the shared
stack is never touched), then for each fault: fresh topics, group and
database; half of a seeded synthetic data set published; ``lfr sink``
started; the fault applied while the other half is published; the sink
(restarted when the fault killed it) left to commit everything. The row
compares what ClickHouse holds with the generator's truth: distinct ids per
table, the per-deployment report, and the dead letters (only the poison
records may be dead). Not a test (it takes minutes): the tests prove each
fault on its own; this prints them side by side. Writes bench/results/chaos.json.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pydantic import SecretStr  # noqa: E402

from common.settings import Settings  # noqa: E402
from sinks.db import NativeDatabase  # noqa: E402
from sinks.migrate import migrate  # noqa: E402
from sinks.report import deployment_report  # noqa: E402
from sinks.rollup import rollup  # noqa: E402
from streams.localstack.kafka import KafkaService  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.integration.sinks.chserver import PrivateServer  # noqa: E402
from tests.integration.sinks.sinkproc import (  # noqa: E402
    SINK_TOPICS,
    committed_all,
    kill,
    produce,
    start_sink,
)
from tests.synthetic import SyntheticData, generate  # noqa: E402

POISON = 50  # garbage records per poisoned run, spread over the sink's topics


@dataclass
class Run:
    """One fault's stack handles and settings."""

    settings: Settings
    clickhouse: PrivateServer
    kafka: KafkaService
    log: Path
    sink: subprocess.Popen[bytes] | None = None


def create_topics(settings: Settings) -> None:
    """The sink's topics of ``settings``, three partitions each."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    names = [getattr(settings, f"topic_{t}") for t in SINK_TOPICS]
    admin.create_topics([NewTopic(n, 3, 1) for n in names])
    admin.close()


def caught_up(settings: Settings, timeout_s: float = 20.0) -> bool:
    """Whether the sink's group committed everything; False when that cannot be told.

    Asked on a thread of its own: kafka-python 3's metadata fetch has no
    timeout and was seen to hang after a broker restart.
    """
    answer: dict[str, bool] = {}

    def ask() -> None:
        try:
            answer["done"] = committed_all(settings)
        except Exception:  # noqa: BLE001 - the broker may still be away
            answer["done"] = False

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return answer.get("done", False)


def halves(data: SyntheticData) -> tuple[SyntheticData, SyntheticData]:
    """The first and second half of the deployments' records."""
    ids = sorted(data.expected)
    parts = (set(ids[: len(ids) // 2]), set(ids[len(ids) // 2 :]))
    out = []
    for keep in parts:
        part = SyntheticData()
        for name in ("operations", "scans", "alerts", "outcomes"):
            setattr(part, name, [r for r in getattr(data, name) if r["deployment_id"] in keep])
        out.append(part)
    return out[0], out[1]


def poison(settings: Settings) -> list[tuple[str, bytes]]:
    """Undecodable records on every topic the sink reads (the dead letters expected)."""
    targets = [settings.topic_scans, settings.topic_alerts, settings.topic_outcomes,
               settings.topic_operations]  # fmt: skip
    return [(targets[i % len(targets)], b"\x00poison-%d" % i) for i in range(POISON)]


# --- faults: each runs while the second half is published ---------------------------
def fault_none(run: Run, outage_s: float) -> None:
    """No fault."""


def fault_sink_kills(run: Run, outage_s: float) -> None:
    """The sink SIGKILLed five times at random moments, restarted within a second."""
    rng = random.Random(11)  # noqa: S311 - timing, not a secret
    for _ in range(5):
        time.sleep(rng.uniform(0.5, 3.0))
        if run.sink is not None:
            kill(run.sink)
        time.sleep(rng.uniform(0.2, 1.0))
        run.sink = start_sink(run.settings, run.log)


def fault_clickhouse_killed(run: Run, outage_s: float) -> None:
    """ClickHouse SIGKILLed, back after the outage."""
    run.clickhouse.kill()
    time.sleep(outage_s)
    run.clickhouse.start()


def fault_clickhouse_stopped(run: Run, outage_s: float) -> None:
    """ClickHouse SIGSTOPped for the outage (a hung server), then continued."""
    assert run.clickhouse.proc is not None  # noqa: S101 - started above
    run.clickhouse.proc.send_signal(signal.SIGSTOP)
    time.sleep(outage_s)
    run.clickhouse.proc.send_signal(signal.SIGCONT)


def fault_wrong_password(run: Run, outage_s: float) -> None:
    """The sink restarted with a wrong ClickHouse password, then with the right one."""
    if run.sink is not None:
        kill(run.sink)
    wrong = run.settings.model_copy(update={"clickhouse_password": SecretStr("wrong")})
    run.sink = start_sink(wrong, run.log)
    time.sleep(outage_s)
    kill(run.sink)
    run.sink = start_sink(run.settings, run.log)


def fault_broker_killed(run: Run, outage_s: float) -> None:
    """The Kafka broker SIGKILLed mid-stream, back after the outage; the sink left running."""
    time.sleep(1.5)  # the sink is starting up and reading the first half
    run.kafka.crash()
    time.sleep(outage_s)
    run.kafka.start()


def fault_poison(run: Run, outage_s: float) -> None:
    """Undecodable records on every input topic (published with the second half)."""


FAULTS: dict[str, Callable[[Run, float], None]] = {
    "none": fault_none,
    "sink SIGKILL x5": fault_sink_kills,
    "ClickHouse SIGKILL": fault_clickhouse_killed,
    "ClickHouse SIGSTOP": fault_clickhouse_stopped,
    "wrong ClickHouse password": fault_wrong_password,
    "Kafka broker SIGKILL": fault_broker_killed,
    f"{POISON} poison records": fault_poison,
}


def verdict(run: Run, data: SyntheticData) -> dict[str, object]:
    """What ClickHouse holds against the truth."""
    s = run.settings
    db = NativeDatabase(host="127.0.0.1", port=run.clickhouse.tcp_port)
    name = s.clickhouse_database
    try:
        rollup(db, name)
        got = {t: db.execute(f"SELECT uniqExact({k}), count() FROM {name}.{t} FINAL")[0]  # noqa: S608
               for t, k in (("scans", "event_id"), ("alerts", "alert_id"),
                            ("outcomes", "alert_id"))}  # fmt: skip
        dead = db.execute(f"SELECT reason, count() FROM {name}.dead_letters GROUP BY reason")  # noqa: S608
        report = deployment_report(db, name)
        stored = {r[0] for r in db.execute(f"SELECT event_id FROM {name}.scans")}  # noqa: S608
    finally:
        db.close()
    want = {"scans": len({r["event_id"] for r in data.scans}),
            "alerts": len({r["alert_id"] for r in data.alerts}),
            "outcomes": len({r["alert_id"] for r in data.outcomes})}  # fmt: skip
    exact = all(got[t][0] == want[t] == got[t][1] for t in want)
    equal = report == [data.expected[k] for k in sorted(data.expected)]
    return {"rows_exact": exact, "report_equal": equal, "rows": {t: got[t][0] for t in got},
            "expected_rows": want, "dead_letters": {str(r): int(n) for r, n in dead},
            "missing_scans": sorted({str(r["event_id"]) for r in data.scans} - stored)[:20],
            "log": str(run.log)}  # fmt: skip


def run_fault(name: str, clickhouse: PrivateServer, kafka: KafkaService, base: Settings,
              scans: int, outage_s: float, logs: Path) -> dict[str, object]:  # fmt: skip
    tag = uuid.uuid4().hex[:6]
    settings = base.model_copy(update={
        "app_id": f"chaos-{tag}", "clickhouse_database": f"chaos_{tag}",
        **{f"topic_{t}": f"chaos{tag}.{t}" for t in ("scans", "alerts", "outcomes",
                                                      "operations", "dlq")},
    })  # fmt: skip
    start = (datetime.now(UTC) - timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    data = generate(7, deployments=6, scans_per_deployment=scans, start=start)
    first, second = halves(data)
    admin = NativeDatabase(host="127.0.0.1", port=clickhouse.tcp_port)
    migrate(admin, settings.clickhouse_database)
    admin.close()
    run = Run(settings, clickhouse, kafka, logs / f"{tag}.log")
    began = time.monotonic()
    create_topics(settings)  # never deleted: the private broker goes away with its data
    produce(settings, first, [])
    run.sink = start_sink(settings, run.log)
    fault = FAULTS[name]

    def publish_second() -> None:
        time.sleep(1.0)
        for attempt in range(10):  # a producer's retries: the broker may be away
            try:
                produce(settings, second, poison(settings) if "poison" in name else [])
                return
            except Exception as exc:  # noqa: BLE001 - any client failure: try again
                print(f"   publish attempt {attempt + 1} failed: {exc}", file=sys.stderr)
                time.sleep(5)

    publisher = threading.Thread(target=publish_second)
    publisher.start()
    fault(run, outage_s)
    publisher.join()
    published = time.monotonic()
    deadline = published + 300
    settled = None
    while time.monotonic() < deadline:
        if run.sink is None or run.sink.poll() is not None:
            run.sink = start_sink(settings, run.log)  # a supervisor's restart
        if caught_up(settings):
            settled = time.monotonic() - published
            break
        time.sleep(1.0)
    time.sleep(2.0)  # the sink's last rollup
    if run.sink is not None:
        kill(run.sink)
    return {"fault": name, "settle_s": None if settled is None else round(settled, 1),
           "total_s": round(time.monotonic() - began, 1), **verdict(run, data)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=600, help="Scans per deployment (600).")
    parser.add_argument("--outage", type=float, default=20.0, help="Seconds of each outage.")
    parser.add_argument("--only", nargs="*", default=None, help="Run only these faults.")
    args = parser.parse_args()
    jars = ROOT / ".lfr" / "kafka-lib"
    if not jars.exists():
        print("no Kafka jars in .lfr/kafka-lib: run `lfr stack up` once", file=sys.stderr)
        return 2
    rows: list[dict[str, object]] = []
    logs = ROOT / "bench" / "results" / "chaos-logs" / time.strftime("%Y%m%dT%H%M%S")
    logs.mkdir(parents=True)
    print(f"sink logs: {logs}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="lfr-chaos-") as tmp:
        root = Path(tmp)
        (root / "state").mkdir()
        (root / "state" / "kafka-lib").symlink_to(jars.resolve())
        base = Settings(kafka_bootstrap=f"127.0.0.1:{free_port()}",
                        kafka_controller_port=free_port(), state_dir=root / "state",
                        sink_max_blocked_s=60)  # fmt: skip
        kafka = KafkaService(base)
        clickhouse = PrivateServer(root / "ch")
        print(kafka.start(), file=sys.stderr)
        clickhouse.start()
        base = base.model_copy(update={"clickhouse_port": clickhouse.tcp_port,
                                       "sink_metrics_port": free_port()})  # fmt: skip
        try:
            for name in FAULTS:
                if args.only and name not in args.only:
                    continue
                print(f"== {name}", file=sys.stderr)
                rows.append(run_fault(name, clickhouse, kafka, base, args.scans, args.outage,
                                      logs))  # fmt: skip
        finally:
            clickhouse.kill()
            kafka.stop()
    print(f"{'fault':28} {'result':10} {'rows':>22} {'dead letters':>14} {'settled':>8}")
    for row in rows:
        ok = row["rows_exact"] and row["report_equal"]
        rows_text = "/".join(str(v) for v in row["rows"].values())  # type: ignore[attr-defined]
        dead = sum(row["dead_letters"].values())  # type: ignore[attr-defined]
        settle = "never" if row["settle_s"] is None else f"{row['settle_s']}s"
        print(f"{row['fault']:28} {'equal' if ok else 'NOT EQUAL':10} {rows_text:>22} "
              f"{dead:>14} {settle:>8}")  # fmt: skip
    out = ROOT / "bench" / "results" / "chaos.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"scans_per_deployment": args.scans, "outage_s": args.outage,
                               "rows": rows}, indent=2))  # fmt: skip
    return 0 if all(r["rows_exact"] and r["report_equal"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
