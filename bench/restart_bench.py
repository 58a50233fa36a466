"""Seconds from a worker's restart to its partitions being assigned, after SIGKILL and SIGTERM.

    .venv/bin/python bench/restart_bench.py [--rounds N] [--static]

Runs ``lfr worker`` as a subprocess against the Kafka broker of the
settings (LFR_KAFKA_BOOTSTRAP, default 127.0.0.1:9092) with unique topics and
app id, waits for it to be assigned its partitions, stops it (SIGKILL, then
SIGTERM in the next round) and starts it again at once. The figure is the
time from the new process's start to Faust's "Executing
_on_partitions_assigned" log line. ``--static`` sets
LFR_WORKER_GROUP_INSTANCE_ID (static membership). Results go to
bench/results/restart.json. The topics and the worker's internal topics are
deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient

from common.settings import Settings
from streams.topics import create_topics

ROOT = Path(__file__).resolve().parents[1]
ASSIGNED = b"Executing _on_partitions_assigned"


def settings_for(tag: str) -> Settings:
    topics = ("detections", "watchlist", "operations", "adjudications", "scans", "alerts",
              "outcomes", "dlq")  # fmt: skip
    return Settings(
        app_id=f"lfr-bench-restart-{tag}",
        partitions=3,
        watchlist_partitions=1,
        worker_metrics_port=0,
        state_dir=Path(f"/tmp/lfr-bench-restart-{tag}"),  # noqa: S108  (scratch, deleted)
        **{f"topic_{t}": f"b{tag}.{t}" for t in topics},
    )


def start(settings: Settings, log: Path, static: bool) -> tuple[subprocess.Popen[bytes], float]:
    env = {**os.environ, **settings.to_env(), "PYTHONUNBUFFERED": "1"}
    if static:
        env["LFR_WORKER_GROUP_INSTANCE_ID"] = "bench-worker-0"
    with log.open("wb") as out:
        started = time.monotonic()
        proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "streams.cli", "worker"], cwd=ROOT, env=env,
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return proc, started


def wait_assigned(log: Path, started: float, timeout: float = 300.0) -> float:
    while time.monotonic() - started < timeout:
        if log.exists() and ASSIGNED in log.read_bytes():
            return time.monotonic() - started
        time.sleep(0.05)
    raise SystemExit(f"no assignment within {timeout:.0f} s; see {log}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="Restarts per signal.")
    parser.add_argument("--static", action="store_true", help="Static group membership.")
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:8]
    settings = settings_for(tag)
    create_topics(settings)
    logs = Path(f"/tmp/lfr-bench-restart-{tag}")  # noqa: S108
    logs.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[float]] = {"SIGKILL": [], "SIGTERM": []}
    proc, started = start(settings, logs / "w0.log", args.static)
    first = wait_assigned(logs / "w0.log", started)
    n = 1
    try:
        for _ in range(args.rounds):
            for name, sig in (("SIGKILL", signal.SIGKILL), ("SIGTERM", signal.SIGTERM)):
                time.sleep(3)  # a settled member
                proc.send_signal(sig)
                proc.wait(timeout=120)
                log = logs / f"w{n}.log"
                n += 1
                proc, started = start(settings, log, args.static)
                seconds = wait_assigned(log, started)
                results[name].append(round(seconds, 2))
                print(f"{name}: restart -> partitions assigned in {seconds:.1f} s", flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
        mine = [t for t in admin.list_topics() if t.startswith((f"b{tag}.", settings.app_id))]
        admin.delete_topics(mine)
        admin.close()
    out: dict[str, Any] = {
        "static_membership": args.static,
        "first_start_s": round(first, 2),
        "restart_to_assigned_s": results,
    }
    path = ROOT / "bench" / "results" / "restart.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(path.read_text()) if path.exists() else {}
    previous["static" if args.static else "dynamic"] = out
    path.write_text(json.dumps(previous, indent=2) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
