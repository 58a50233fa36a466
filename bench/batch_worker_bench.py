"""The worker with a 10-entry watchlist: Faust's take_events path vs the batch source.

Both run the real ``lfr worker`` on the same detections (each with its own
group and output topics), beside the hand-written aiokafka loop that does the
same work (``ceiling_loop.py``), one after the other in rounds. The batch
source run uses ``batch_worker.py``: the same agent body, fed by
:func:`streams.worker.runtime.batch_source.install_batch_handler`.
Run: ``.venv/bin/python bench/batch_worker_bench.py`` (needs Kafka at
LFR_KAFKA_BOOTSTRAP); writes bench/results/batch_worker.json.
LFR_BENCH_SMALL_DETECTIONS (default 50000), LFR_BENCH_ROUNDS (default 1).
"""

from __future__ import annotations

import asyncio
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ceiling_loop import same_work_loop
from worker_bench import (
    ROOT,
    WORKER_LOG_LEVEL,
    cleanup,
    env_of,
    scan_timestamps,
    scenario,
    stamp_scans_on_append,
    start_profiler,
    stop_worker,
    write_results,
)

from common.settings import Settings
from streams.topics import create_topics

RESULTS = ROOT / "bench" / "results" / "batch_worker.json"
MODULES = {"take_events": "streams.cli", "batch_source": "batch_worker"}


def variant(settings: Settings, name: str, n: int) -> Settings:
    """Own group, outputs and metrics port on the same inputs."""
    prefix = settings.topic_scans.rsplit(".", 1)[0]
    other = settings.model_copy(update={
        "app_id": f"{settings.app_id}-{name}-{n}", "topic_scans": f"{prefix}.scans-{name}-{n}",
        "topic_alerts": f"{prefix}.alerts-{name}-{n}",
        "topic_outcomes": f"{prefix}.outcomes-{name}-{n}",
        "worker_metrics_port": settings.worker_metrics_port + 1 + n * 2 + len(name) % 2,
        "state_dir": Path(tempfile.mkdtemp(prefix=f"lfr-bench-{name}-")),
    })  # fmt: skip
    create_topics(other)
    stamp_scans_on_append(other)
    return other


def run(settings: Settings, module: str, detections: int, name: str) -> dict[str, Any]:
    log = open(settings.state_dir / "worker.log", "wb")  # noqa: SIM115 - closed by stop_worker
    env = {**os.environ, **env_of(settings), "PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}"}
    # fixed argv: this interpreter running the project's CLI or the bench launcher
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", module, "--log-level", WORKER_LOG_LEVEL, "worker"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    profiler = start_profiler(proc, name)  # LFR_BENCH_PYSPY=DIR, as in worker_bench
    try:
        stamps = scan_timestamps(settings, detections, timeout=900)
        if len(stamps) < detections:
            raise RuntimeError(f"only {len(stamps)} of {detections} scans; see {log.name}")
        seconds = (max(stamps) - min(stamps)) / 1000
        with urllib.request.urlopen(  # noqa: S310
            f"http://127.0.0.1:{settings.worker_metrics_port}/metrics", timeout=5
        ) as response:
            text = response.read().decode()
        alerts = next(
            float(line.split()[1]) for line in text.splitlines()
            if line.startswith("lfr_alerts_total ")
        )  # fmt: skip
        return {"detections": detections, "seconds": seconds,
                "per_second": detections / seconds, "alerts": alerts}  # fmt: skip
    finally:
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(timeout=60)
        stop_worker(proc, log)


def main() -> int:
    detections = int(os.environ.get("LFR_BENCH_SMALL_DETECTIONS", "50000"))
    rounds = int(os.environ.get("LFR_BENCH_ROUNDS", "1"))
    result: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_1m": os.getloadavg()[0]},
        "watchlist": 10, "detections": detections,
    }  # fmt: skip
    settings, _ = scenario(10, detections, hits=100)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in [*MODULES, "aiokafka_same_work"]}
    try:
        for n in range(rounds):
            for name, module in MODULES.items():
                runs[name].append(run(variant(settings, name, n), module, detections, name))
                print(name, runs[name][-1], flush=True)
            ceiling = asyncio.run(same_work_loop(variant(settings, "ceiling", n), detections))
            runs["aiokafka_same_work"].append(ceiling)
            print("aiokafka_same_work", ceiling, flush=True)
    finally:
        cleanup(settings)
    rates = {name: statistics.median(r["per_second"] for r in rs) for name, rs in runs.items()}
    same = rates["aiokafka_same_work"]
    result["runs"] = runs
    result["median_per_second"] = rates
    result["ratio_to_same_work"] = {name: rate / same for name, rate in rates.items()}
    result["ratio_batch_source_to_take_events"] = rates["batch_source"] / rates["take_events"]
    write_results(RESULTS, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
