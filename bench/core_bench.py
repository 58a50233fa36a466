"""The detections stage alone: CPU per detection of ``process_batch``, without Kafka or Faust.

Decode, validate, gate, match and build the outputs of 500-detection batches
(one in 50 a watchlist face) against a 10-entry and a 16,000-entry watchlist
of 512 dimensions, in this process. The figure is CPU time (all threads of
the process, so BLAS threads spinning count) per detection, best of several
runs: on a shared machine it moves far less than wall time.

With LFR_BENCH_BASELINE_ROOT (another checkout), the same script runs again
on that checkout's code, interleaved with this one's, for a before/after in
one run. Run: ``.venv/bin/python bench/core_bench.py``; writes
bench/results/core.json.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "core.json"
BATCH = 500
DIM = 512
T0 = datetime(2025, 10, 1, 9, 0, tzinfo=UTC)
BASELINE_ROOT = os.environ.get("LFR_BENCH_BASELINE_ROOT")


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    rows = rng.standard_normal((n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def measure(watchlist_size: int, runs: int) -> dict[str, Any]:
    """CPU and wall microseconds per detection of process_batch, best of ``runs`` batches."""
    from schemas.codec import encode
    from schemas.templates import template_to_bytes
    from streams.worker.detections import DetectionContext, process_batch
    from streams.worker.pseudonym import Pseudonymiser
    from streams.worker.source import SourceRecord
    from streams.worker.watchlist_store import WatchlistStore
    from streams.worker.windows import window_from_record

    window = window_from_record({
        "deployment_id": "D1", "site_id": "S1", "location": "bench", "use_case": "bench",
        "mode": "FIXED_REMOTE", "camera_ids": ["c1"], "watchlist_id": "W1",
        "watchlist_size": watchlist_size, "match_threshold": 0.64, "authorised_by": "bench",
        "authorised_at": T0 - timedelta(hours=1), "starts_at": T0, "ends_at": None,
        "status": "ACTIVE", "officers_present": 1, "updated_at": T0 - timedelta(hours=1),
    })  # fmt: skip
    rng = np.random.default_rng(1)
    watchlist = unit_rows(rng, watchlist_size)
    store = WatchlistStore()
    for i, row in enumerate(watchlist):
        entry = {
            "subject_id": f"p{i:05d}", "watchlist_id": "W1", "op": "ADD", "category": "missing",
            "wanted_since": T0 - timedelta(days=3), "template": template_to_bytes(row),
            "template_model": "demo-512", "updated_at": T0 - timedelta(hours=2),
        }  # fmt: skip
        store.apply_entry(f"W1:p{i:05d}", entry, 0)
    faces = unit_rows(rng, BATCH)
    records = []
    for n in range(BATCH):
        face = watchlist[n % watchlist_size] if n % 50 == 0 else faces[n]
        value = encode("DetectionEvent", {
            "event_id": f"e{n}", "camera_id": "c1", "site_id": "S1",
            "captured_at": T0 + timedelta(minutes=5, milliseconds=n), "face_quality": 0.9,
            "template": template_to_bytes(face), "template_model": "demo-512",
        })  # fmt: skip
        records.append(SourceRecord("lfr.detections", 0, n, b"S1", value, 1))
    ctx = DetectionContext(
        windows_of=lambda site: [window] if site == "S1" else [],
        watchlist=store.snapshot,
        high_water_of=lambda _site: None,
        pseudonymiser=Pseudonymiser(b"bench"),
    )  # the stage's own decoder: each checkout measures what its worker runs
    result = process_batch(records, ctx)  # warm-up: builds the snapshot
    cpu = wall = float("inf")
    for _ in range(runs):
        cpu_started, started = time.process_time(), time.perf_counter()
        result = process_batch(records, ctx)
        wall = min(wall, time.perf_counter() - started)
        cpu = min(cpu, time.process_time() - cpu_started)
    return {"watchlist": f"{watchlist_size} x {DIM}", "batch": BATCH,
            "cpu_us_per_detection": round(cpu / BATCH * 1e6, 2),
            "wall_us_per_detection": round(wall / BATCH * 1e6, 2),
            "alerts_per_batch": len(result.alerts)}  # fmt: skip


SCENARIOS = ((10, 40), (16_000, 8))


def own() -> list[dict[str, Any]]:
    """Every scenario with this interpreter's code (the one on sys.path)."""
    return [measure(size, runs) for size, runs in SCENARIOS]


def other(root: str) -> list[dict[str, Any]]:
    """Every scenario with the code of checkout ``root``."""
    # fixed argv: this interpreter running this file, on the other checkout's packages
    done = subprocess.run(  # noqa: S603
        [sys.executable, __file__, "--child"], cwd=root, env={**os.environ, "PYTHONPATH": root},
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    result: list[dict[str, Any]] = json.loads(done.stdout)
    return result


def main() -> int:
    if "--child" in sys.argv:
        print(json.dumps(own()))
        return 0
    sys.path.insert(0, str(ROOT))
    rounds = int(os.environ.get("LFR_BENCH_CORE_ROUNDS", "3"))
    mine: list[list[dict[str, Any]]] = []
    base: list[list[dict[str, Any]]] = []
    for _ in range(rounds):  # interleaved, so that drift in the machine's load hits both
        if BASELINE_ROOT:
            base.append(other(BASELINE_ROOT))
        mine.append(other(str(ROOT)))

    def best(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
        columns = zip(*runs, strict=True)
        return [min(column, key=lambda r: r["cpu_us_per_detection"]) for column in columns]

    result: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_1m": os.getloadavg()[0]},
        "rounds": rounds, "this_checkout": best(mine),
    }  # fmt: skip
    if base:
        result["baseline"] = {"root": BASELINE_ROOT, "results": best(base)}
        result["cpu_speedup"] = [
            round(b["cpu_us_per_detection"] / m["cpu_us_per_detection"], 2)
            for b, m in zip(result["baseline"]["results"], result["this_checkout"], strict=True)
        ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
