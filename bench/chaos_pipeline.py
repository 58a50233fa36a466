"""The fault table of the whole pipeline: does the report still equal the simulator's truth?

Run (needs Java 17, clickhouse-server and the Kafka jars cached by `lfr stack up`):
    .venv/bin/python bench/chaos_pipeline.py [--scenario default|small] [--only NAME ...]

Starts a PRIVATE stack (its own Kafka broker and ClickHouse server on free
127.0.0.1 ports; the shared stack is never touched) and, for each fault,
fresh topics, consumer groups and database. The real commands run as child
processes: ``lfr worker`` and ``lfr sink`` (restarted like a supervisor would
when they exit), the scenario published as ``lfr demo`` does (or with
``lfr simulate --out`` and ``lfr publish`` in a chosen order). The fault is
applied while the scenario is published and processed; then the lag probe
(:mod:`streams.kafka_lag`) decides when both groups have committed
everything, ``lfr rollup`` runs and ``lfr report --format json`` (table and
time to locate) is compared field by field with the simulator's ground truth.

One row per fault: equal / NOT EQUAL (with the differing fields), the time
from the last input (publishing and the fault both over) to the settled
report, the restarts, and the dead letters by reason. Not a test and not in
``make bench`` (the default scenario's 11 rows took 17 minutes on a quiet
2-core machine); bench/chaos.py drives the sink alone on a synthetic data set. Writes
bench/results/chaos_pipeline.json and logs under bench/results/chaos-pipeline-logs/.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import subprocess  # noqa: S404 - runs the project's own commands
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.errors import CommandError  # noqa: E402
from common.settings import Settings  # noqa: E402
from streams.demo import lfr, publish_scenario  # noqa: E402
from streams.kafka_lag import LagProbe, LagUnknown  # noqa: E402
from streams.localstack import stack  # noqa: E402
from streams.localstack.clickhouse import ClickHouseService  # noqa: E402
from streams.localstack.kafka import KafkaService  # noqa: E402
from streams.localstack.topology import Topology  # noqa: E402
from streams.pipeline import Pipeline  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.integration.stack.private_stack import PrivateStack, private_stack  # noqa: E402

RESULTS = ROOT / "bench" / "results"
INPUTS = ("detections", "watchlist", "operations", "adjudications")
PROBE_TIMEOUT_S = 20.0  # one lag reading; kafka-python can hang right after a broker restart
SETTLE_S = 10.0  # lag 0 this long, steadily, is "settled"
LATE_S = 90.0  # when not equal at once: how long to keep comparing (an early "settled"?)


@dataclass
class Options:
    """The command line."""

    scenario: str
    kills: int
    timed_kills: int
    clickhouse_down_s: float
    broker_down_s: float
    poison_per_topic: int
    timeout_s: float
    overrides: dict[str, str] = field(default_factory=dict)  # --set: settings of every row


@dataclass
class Row:
    """One fault's run: its settings, processes, stack handles and what happened."""

    name: str
    settings: Settings
    pipeline: Pipeline
    kafka: list[KafkaService]
    clickhouse: ClickHouseService
    logs: Path
    options: Options
    extra: list[Pipeline] = field(default_factory=list)
    restarts: Counter[str] = field(default_factory=Counter)
    exits: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    published: threading.Event = field(default_factory=threading.Event)
    published_at: float = 0.0
    poison_sent: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(11))  # noqa: S311

    def pipelines(self) -> list[Pipeline]:
        return [self.pipeline, *self.extra]

    def restart(self, pipeline: Pipeline, name: str, why: str) -> None:
        """Start ``name`` again and count it."""
        pipeline.start(name)
        self.restarts[f"{name} ({why})"] += 1


# --- reading the groups -------------------------------------------------------------
def within(seconds: float, ask: Callable[[], Any]) -> Any:
    """``ask()`` on a thread of its own; None when it fails or takes longer than ``seconds``."""
    answer: dict[str, Any] = {}

    def run() -> None:
        try:
            answer["value"] = ask()
        except (LagUnknown, Exception):  # noqa: BLE001 - the broker may be away
            answer["value"] = None

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    return answer.get("value")


class Groups:
    """Lag and committed offsets of the pipeline's groups, each reading bounded in time."""

    def __init__(self, row: Row) -> None:
        self.row = row
        self.probe: LagProbe | None = None

    def _probe(self) -> LagProbe:
        if self.probe is None:
            self.probe = LagProbe(self.row.settings)
        return self.probe

    def lags(self) -> dict[str, int] | None:
        """Records each group has still to commit; None when that cannot be told now."""

        def ask() -> dict[str, int]:
            probe = self._probe()
            groups = self.row.pipeline.groups()
            return {g: sum(probe.group_lag(g, t).values()) for g, t in groups.items()}

        value = within(PROBE_TIMEOUT_S, ask)
        if value is None:
            self.probe = None  # a hung or failed client is dropped, not reused
        return value

    def committed(self, group: str) -> int | None:
        """Sum of ``group``'s committed offsets (moves when the group commits)."""

        def ask() -> int:
            return self._probe().committed_total(group, self.row.pipeline.groups()[group])

        return within(PROBE_TIMEOUT_S, ask)

    def close(self) -> None:
        if self.probe is not None:
            within(PROBE_TIMEOUT_S, self.probe.close)


def group_of(row: Row, name: str) -> str:
    """The consumer group of ``worker`` or ``sink``."""
    return list(row.pipeline.groups())[0 if name == "worker" else 1]


def wait_working(row: Row, groups: Groups, name: str, timeout_s: float = 90.0) -> bool:
    """Block until ``name``'s group commits (its offsets move) while it has lag left."""
    deadline = time.monotonic() + timeout_s
    group = group_of(row, name)
    before = groups.committed(group)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = groups.committed(group)
        lags = groups.lags()
        moved = before is not None and now is not None and now > before
        if moved and lags and lags[group] > 0:
            return True
        if row.published.is_set() and lags is not None and not any(lags.values()):
            return False  # nothing left to work on
        before = now
    return False


def mark(row: Row, groups: Groups, what: str) -> None:
    """Note ``what`` happened and the lag of each group at that moment (was it mid-work?)."""
    lags = groups.lags()
    at = "lag unknown" if lags is None else f"lag worker {lags[group_of(row, 'worker')]}, " \
        f"sink {lags[group_of(row, 'sink')]}"  # fmt: skip
    row.notes.append(f"{what} at {at}")


# --- faults: each runs while the scenario is published and processed ----------------
def fault_none(row: Row, groups: Groups) -> None:
    """No fault."""


def fault_kill_storm(row: Row, groups: Groups) -> None:
    """~20 SIGKILLs of the worker and the sink at random moments, each back within 1-3 s."""
    for _ in range(row.options.kills):
        time.sleep(row.rng.uniform(1.0, 4.0))
        name = "worker" if row.rng.random() < 0.6 else "sink"
        row.pipeline.kill(name, signal.SIGKILL)
        time.sleep(row.rng.uniform(1.0, 3.0))
        row.restart(row.pipeline, name, "SIGKILL")


def fault_timed_kills(row: Row, groups: Groups) -> None:
    """SIGKILLs right after the worker or the sink committed, while it still has work."""
    done = 0
    for i in range(row.options.timed_kills):
        name = ("worker", "sink")[i % 2]
        if not wait_working(row, groups, name):
            row.notes.append(f"only {done} timed kills: nothing left to work on")
            return
        if done == 0:
            mark(row, groups, "first timed kill")
        row.pipeline.kill(name, signal.SIGKILL)
        done += 1
        time.sleep(row.rng.uniform(1.0, 3.0))
        row.restart(row.pipeline, name, "timed SIGKILL")
        row.pipeline.wait_ready(name)


def fault_clickhouse_killed(row: Row, groups: Groups) -> None:
    """ClickHouse SIGKILLed while the sink writes, back after the outage; the sink left running."""
    wait_working(row, groups, "sink")
    mark(row, groups, "ClickHouse killed")
    row.clickhouse.crash()
    time.sleep(row.options.clickhouse_down_s)
    row.clickhouse.start()


def fault_clickhouse_stopped(row: Row, groups: Groups) -> None:
    """ClickHouse SIGSTOPped while the sink writes (a hung server), continued; then a rollup."""
    wait_working(row, groups, "sink")
    mark(row, groups, "ClickHouse stopped")
    pid = row.clickhouse.pid_file.read()
    assert pid is not None  # noqa: S101 - the stack started it
    os.kill(pid, signal.SIGSTOP)
    time.sleep(row.options.clickhouse_down_s)
    os.kill(pid, signal.SIGCONT)
    try:
        lfr(row.settings, "rollup", capture=True)
        row.notes.append("lfr rollup right after SIGCONT: ok")
    except CommandError as exc:
        row.notes.append(f"lfr rollup right after SIGCONT FAILED: {exc}")


POISON_KINDS = (
    lambda i: b"\x00\xffnot a record %d" % i,  # undecodable bytes
    lambda i: b'{"poison": %d}' % i,  # valid JSON, not the record's shape
    lambda i: b"[1, 2, %d" % i,  # truncated JSON
)


def fault_poison(row: Row, groups: Groups) -> None:
    """Poison records on every input topic, spread over the publishing."""
    from kafka import KafkaProducer

    s = row.settings
    producer = KafkaProducer(**s.kafka_python_config(), acks="all")
    per_topic = row.options.poison_per_topic
    chunks = 20
    try:
        for chunk in range(chunks):
            for short in INPUTS:
                topic = getattr(s, f"topic_{short}")
                for i in range(chunk * per_topic // chunks, (chunk + 1) * per_topic // chunks):
                    kind = POISON_KINDS[i % len(POISON_KINDS)]
                    producer.send(topic, key=b"poison-%d" % i, value=kind(i))
                    row.poison_sent += 1
            producer.flush()
            time.sleep(0.5)
    finally:
        producer.close()


def fault_rebalance(row: Row, groups: Groups) -> None:
    """A second worker joins the group mid-stream; then the first is stopped (SIGTERM)."""
    wait_working(row, groups, "worker")
    s = row.settings
    second = s.model_copy(update={
        "worker_metrics_port": free_port(), "state_dir": s.state_dir / "worker-2",
    })  # fmt: skip
    other = Pipeline(second, row.logs / "worker-2")
    row.extra.append(other)
    other.start("worker")
    other.wait_ready("worker")
    wait_working(row, groups, "worker", timeout_s=60)  # the group rebalanced and commits again
    mark(row, groups, "worker 2 joined; worker 1 stopped")
    row.pipeline.kill("worker", signal.SIGTERM)


def fault_broker_killed(row: Row, groups: Groups) -> None:
    """The broker SIGKILLed once all is published (the pipeline still working), back later."""
    row.published.wait()
    mark(row, groups, "broker killed")
    row.kafka[0].crash()
    time.sleep(row.options.broker_down_s)
    row.kafka[0].start()


def fault_broker_left_down(row: Row, groups: Groups) -> None:
    """One of three brokers SIGKILLed mid-stream and left down."""
    wait_working(row, groups, "worker")
    mark(row, groups, "broker 2 of 3 killed (left down)")
    row.kafka[1].crash()


@dataclass(frozen=True)
class Fault:
    """One row of the table: what is done, how the scenario is published, on how many brokers."""

    name: str
    act: Callable[[Row, Groups], None]
    order: tuple[str, ...] | None = None  # `lfr publish` files in this order; None: in event time
    brokers: int = 1
    # why the report may differ by design (the row is shown, not counted as a failure)
    outside_contract: str = ""


WATCHLIST_FIRST = ("watchlist", "operations", "detections", "adjudications")
DETECTIONS_FIRST = ("detections", "watchlist", "operations", "adjudications")
FAULTS = [
    Fault("none", fault_none),
    Fault("SIGKILL storm", fault_kill_storm),
    Fault("timed SIGKILLs", fault_timed_kills),
    Fault("ClickHouse SIGKILL", fault_clickhouse_killed),
    Fault("ClickHouse SIGSTOP", fault_clickhouse_stopped),
    Fault("poison records", fault_poison),
    Fault("rebalance", fault_rebalance),
    Fault("broker SIGKILL", fault_broker_killed),
    Fault("watchlist first", fault_none, order=WATCHLIST_FIRST),
    Fault(
        "detections first",
        fault_none,
        order=DETECTIONS_FIRST,
        outside_contract="detections before their window are gated unknown_site by design",
    ),
    Fault("3 brokers, 1 killed", fault_broker_left_down, brokers=3),
]


def stop_all(row: Row) -> None:
    """Stop every worker and sink of the row."""
    for pipeline in row.pipelines():
        pipeline.stop()


# --- one row --------------------------------------------------------------------------
def supervise(row: Row, stop: threading.Event) -> None:
    """Restart a worker or sink that exited by itself (a supervisor's job), after 1 s."""
    while not stop.wait(1.0):
        for pipeline in row.pipelines():
            for name, proc in list(pipeline.procs.items()):
                code = proc.poll()
                if code is None:
                    continue
                row.exits.append(f"{name} exited {code}")
                time.sleep(1.0)
                row.restart(pipeline, name, f"exit {code}")


def publish(row: Row, fault: Fault, files: Path, result: dict[str, Any]) -> None:
    """Publish the scenario (in event time, or file by file in ``fault.order``)."""
    try:
        if fault.order is None:
            result["truth"] = publish_scenario(row.settings, row.options.scenario, None, False)
        else:
            for short in fault.order:
                lfr(row.settings, "publish", "--topic", short, str(files / f"{short}.jsonl"),
                    capture=True)  # fmt: skip
            result["truth"] = json.loads((files / "truth.json").read_text())
    except Exception as exc:  # noqa: BLE001 - the row reports it
        result["error"] = f"publishing failed: {type(exc).__name__}: {exc}"
    finally:
        row.published_at = time.monotonic()
        row.published.set()


def settle(row: Row, groups: Groups, quiet: float) -> float | None:
    """When (monotonic) both groups had committed everything, steadily; None: never."""
    deadline = quiet + row.options.timeout_s
    zero_since: float | None = None
    while time.monotonic() < deadline:
        lags = groups.lags()
        now = time.monotonic()
        if lags is not None and not any(lags.values()):
            zero_since = zero_since or now
            if now - zero_since >= SETTLE_S:
                return zero_since
        else:
            zero_since = None
        time.sleep(1.0)
    return None


def report(settings: Settings) -> tuple[list[dict[str, Any]], Any]:
    rows = json.loads(lfr(settings, "report", "--format", "json", capture=True))
    ttl = json.loads(lfr(settings, "report", "--time-to-locate", "--format", "json", capture=True))
    return rows, ttl


def differences(got: tuple[list[dict[str, Any]], Any], truth: dict[str, Any]) -> list[str]:
    """The fields of the report that differ from the truth (empty: equal)."""
    rows, ttl = got
    want = {r["deployment_id"]: r for r in truth["deployments"]}
    have = {r["deployment_id"]: r for r in rows}
    out = []
    for key in ("total_alerts", "faces_seen"):
        got_n = sum(r.get(key) or 0 for r in rows)
        want_n = sum(r.get(key) or 0 for r in truth["deployments"])
        if got_n != want_n:
            out.append(f"{key} in all: {got_n} (truth {want_n})")
    out += [f"{d}: missing" for d in sorted(set(want) - set(have))]
    out += [f"{d}: not in the truth" for d in sorted(set(have) - set(want))]
    for dep in sorted(set(want) & set(have)):
        for key in sorted(set(want[dep]) | set(have[dep])):
            if want[dep].get(key) != have[dep].get(key):
                out.append(f"{dep}.{key}: {have[dep].get(key)} (truth {want[dep].get(key)})")
    if [r["deployment_id"] for r in rows] != [r["deployment_id"] for r in truth["deployments"]]:
        out.append("deployment order differs")
    if ttl != truth["time_to_locate"]:
        out.append("time_to_locate differs")
    return out


def compare(row: Row, truth: dict[str, Any]) -> list[str]:
    """Roll up and compare the report with the truth; the differences."""
    try:
        lfr(row.settings, "rollup", capture=True)
        return differences(report(row.settings), truth)
    except CommandError as exc:
        return [f"rollup/report failed: {exc}"]


def dead_letters(settings: Settings) -> tuple[dict[str, int], int]:
    """Dead letters stored by the sink: distinct source records by source topic, stage and
    reason; and how many distinct input records (of the four input topics) are dead."""
    from clickhouse_driver import Client

    client = Client(**settings.clickhouse_config("admin"))
    short = {getattr(settings, f"topic_{t}"): t for t in (*INPUTS, "scans", "alerts", "outcomes")}
    table = f"{settings.clickhouse_database}.dead_letters"
    inputs = ", ".join(f"'{getattr(settings, f'topic_{t}')}'" for t in INPUTS)
    source = "uniqExact(source_topic, source_partition, source_offset)"
    try:
        got = client.execute(
            f"SELECT source_topic, stage, reason, {source} FROM {table} "  # noqa: S608
            "GROUP BY source_topic, stage, reason ORDER BY source_topic, stage, reason"
        )
        dead_inputs = client.execute(
            f"SELECT {source} FROM {table} WHERE source_topic IN ({inputs})"  # noqa: S608
        )[0][0]
    finally:
        client.disconnect()
    by = {f"{short.get(t, t)}/{stage}:{r}": int(n) for t, stage, r, n in got}
    return by, int(dead_inputs)


def run_row(fault: Fault, main: PrivateStack, options: Options, files: Path,
            logs: Path, scratch: Path) -> dict[str, Any]:  # fmt: skip
    """Run one fault on fresh topics, groups and database; its row of the table."""
    with ExitStack() as cleanup:
        kafka_stack = main
        if fault.brokers > 1:
            kafka_stack = cleanup.enter_context(
                private_stack(scratch / f"brokers-{fault.brokers}", Topology(brokers=fault.brokers),
                              services=("kafka",)))  # fmt: skip
        return _run_row(fault, main, kafka_stack, options, files, logs, cleanup)
    raise AssertionError("unreachable")  # an ExitStack may swallow exceptions, for mypy


def _run_row(fault: Fault, main: PrivateStack, kafka_stack: PrivateStack, options: Options,
             files: Path, logs: Path, cleanup: ExitStack) -> dict[str, Any]:  # fmt: skip
    tag = uuid.uuid4().hex[:6]
    row_logs = logs / f"{FAULTS.index(fault) + 1:02d}-{fault.name.replace(' ', '-')}"
    settings = kafka_stack.client_settings(
        clickhouse_port=main.stack_settings.clickhouse_port,
        clickhouse_http_port=main.stack_settings.clickhouse_http_port,
        app_id=f"chaos-{tag}", clickhouse_database=f"chaos_{tag}",
        worker_metrics_port=free_port(), sink_metrics_port=free_port(),
        partitions=3, watchlist_partitions=2, state_dir=row_logs / "state",
        **{f"topic_{t}": f"c{tag}.{t}" for t in (*INPUTS, "scans", "alerts", "outcomes", "dlq")},
        **options.overrides,
    )  # fmt: skip
    lfr(settings, "topics", "create", capture=True)
    lfr(settings, "migrate", "--wait", "60", capture=True)
    stack_services = stack.services(kafka_stack.stack_settings, kafka_stack.topology)
    kafka = [s for s in stack_services if isinstance(s, KafkaService)]
    clickhouse = next(s for s in stack.services(main.stack_settings, main.topology)
                      if isinstance(s, ClickHouseService))  # fmt: skip
    row = Row(fault.name, settings, Pipeline(settings, row_logs), kafka, clickhouse, row_logs,
              options)  # fmt: skip
    cleanup.callback(stop_all, row)
    groups = Groups(row)
    cleanup.callback(groups.close)
    began = time.monotonic()
    for name in ("worker", "sink"):
        row.pipeline.start(name)
    for name in ("worker", "sink"):
        row.pipeline.wait_ready(name)
    stop = threading.Event()
    supervisor = threading.Thread(target=supervise, args=(row, stop), daemon=True)
    supervisor.start()
    cleanup.callback(stop.set)
    published: dict[str, Any] = {}
    publisher = threading.Thread(target=publish, args=(row, fault, files, published))
    publisher.start()
    fault_error = None
    try:
        fault.act(row, groups)
    except Exception as exc:  # noqa: BLE001 - the row reports it
        fault_error = f"the fault failed: {type(exc).__name__}: {exc}"
    publisher.join()
    quiet = time.monotonic()
    settled = settle(row, groups, quiet)
    stop.set()
    supervisor.join()
    result: dict[str, Any] = {"fault": fault.name, "doc": (fault.act.__doc__ or "").strip(),
                              "outside_contract": fault.outside_contract}  # fmt: skip
    if "error" in published or fault_error:
        diffs = [e for e in (published.get("error"), fault_error) if e]
    else:
        diffs = compare(row, published["truth"])
        waited = 0.0
        while (
            diffs
            and not fault.outside_contract
            and waited < LATE_S
            and "rollup/report failed" not in diffs[0]
        ):
            time.sleep(10)
            waited += 10
            if not compare(row, published["truth"]):
                row.notes.append(f"equal only {waited:.0f}s after 'settled' (early settle)")
                break
    dead, dead_inputs = dead_letters(settings)
    result.update({
        "equal": not diffs, "differences": diffs[:40], "difference_count": len(diffs),
        "settle_s": None if settled is None else round(settled - row.published_at, 1),
        "settle_after_fault_s": None if settled is None else round(max(0, settled - quiet), 1),
        "total_s": round(time.monotonic() - began, 1),
        "restarts": dict(row.restarts), "unexpected_exits": row.exits,
        "dead_letters": dead, "poison_sent": row.poison_sent, "notes": row.notes,
        "logs": str(row_logs),
    })  # fmt: skip
    if row.poison_sent or dead_inputs:
        # every poison record dead, and nothing else of the input
        result["every_poison_dead_lettered"] = dead_inputs == row.poison_sent
        if dead_inputs != row.poison_sent:
            result["equal"] = False
            result["differences"].append(
                f"{dead_inputs} input records dead-lettered, {row.poison_sent} poison sent"
            )
    return result


# --- the table --------------------------------------------------------------------------
def detail(row: dict[str, Any]) -> str:
    """The detail column: settle time, restarts, exits, dead letters, notes."""
    if row["settle_s"] is None:
        parts = ["never settled"]
    else:
        parts = [f"settled {row['settle_s']}s after the last record published"]
        if row["settle_after_fault_s"] != row["settle_s"]:
            parts[0] += f" ({row['settle_after_fault_s']}s after the fault ended)"
    if row["restarts"]:
        parts.append("restarts " + ", ".join(f"{k} x{n}" for k, n in row["restarts"].items()))
    if row["unexpected_exits"]:
        parts.append("exits: " + ", ".join(Counter(row["unexpected_exits"]).keys()))
    dead = row["dead_letters"]
    parts.append("dead letters " + (", ".join(f"{k} {n}" for k, n in dead.items()) or "0"))
    if row["poison_sent"]:
        parts.append(f"poison sent {row['poison_sent']}")
    parts += row["notes"]
    return "; ".join(parts)


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown table of the rows."""
    lines = ["| fault | result | detail |", "|---|---|---|"]
    for row in rows:
        result = "equal" if row["equal"] else "NOT EQUAL: " + "; ".join(row["differences"][:6])
        if row["difference_count"] > 6:
            result += f" (+{row['difference_count'] - 6} more)"
        if row["outside_contract"]:
            result += f" (outside the contract: {row['outside_contract']})"
        lines.append(f"| {row['fault']} | {result} | {detail(row)} |")
    return "\n".join(lines)


def scenario_files(scenario: str, where: Path) -> Path:
    """``lfr simulate --out``: the JSON-lines files and truth.json of the scenario."""
    out = where / f"scenario-{scenario}"
    subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "streams.cli", "simulate", "--scenario", scenario,
         "--out", str(out)], check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    return out


def main() -> int:
    names = [f.name for f in FAULTS]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="default", help="default (164k detections) or small")
    parser.add_argument("--only", nargs="*", default=None, metavar="NAME",
                        help="run only these faults: " + ", ".join(map(repr, names)))  # fmt: skip
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs in the storm (20)")
    parser.add_argument("--timed-kills", type=int, default=10, help="timed SIGKILLs (10)")
    parser.add_argument("--clickhouse-down", type=float, default=60.0,
                        help="seconds ClickHouse is killed or stopped (60)")  # fmt: skip
    parser.add_argument("--broker-down", type=float, default=30.0,
                        help="seconds the broker stays killed (30)")  # fmt: skip
    parser.add_argument("--poison", type=int, default=None,
                        help="poison records per input topic (2700; 100 for small)")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds a row may take to settle after the input (1800)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS / "chaos_pipeline.json",
                        help="where the rows go (bench/results/chaos_pipeline.json)")  # fmt: skip
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for every row's processes, e.g. "
                        "watchlist_retire_grace_s=900 (repeatable)")  # fmt: skip
    args = parser.parse_args()
    logging.getLogger("clickhouse_driver").setLevel(logging.CRITICAL)  # ClickHouse is killed
    os.environ.setdefault("LFR_STACK", "local")  # the private stack: processes, never Docker
    unknown = set(args.only or ()) - set(names)
    if unknown:
        parser.error(f"unknown fault(s) {sorted(unknown)}; known: {names}")
    poison = args.poison if args.poison is not None else (100 if args.scenario == "small" else 2700)
    options = Options(args.scenario, args.kills, args.timed_kills, args.clickhouse_down,
                      args.broker_down, poison, args.timeout,
                      dict(item.split("=", 1) for item in args.set))  # fmt: skip
    logs = RESULTS / "chaos-pipeline-logs" / time.strftime("%Y%m%dT%H%M%S")
    logs.mkdir(parents=True)
    print(f"logs: {logs}", file=sys.stderr)
    out: Path = args.out
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lfr-chaos-pipeline-") as tmp:
        scratch = Path(tmp)
        files = scenario_files(args.scenario, scratch)
        with private_stack(scratch / "stack", Topology()) as main_stack:
            for fault in FAULTS:
                if args.only and fault.name not in args.only:
                    continue
                print(f"== {fault.name} ({time.strftime('%H:%M:%S')})", file=sys.stderr)
                row = run_row(fault, main_stack, options, files, logs, scratch)
                rows.append(row)
                print(table([row]).splitlines()[-1], file=sys.stderr)
                out.parent.mkdir(parents=True, exist_ok=True)
                result = {"scenario": args.scenario, "options": vars(args), "rows": rows}
                out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(table(rows))
    return 0 if all(r["equal"] or r["outside_contract"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
