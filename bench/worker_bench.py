"""Worker throughput on the real broker, beside the two ceilings it cannot beat.

1. A 16,000 x 512 watchlist: worker detections/s through decode + gate +
   match + produce, beside a bare numpy float32 matmul of the same shapes
   (timed right before and right after each worker; the worker's ratio uses
   the mean of the two).
2. A 10-entry watchlist: the same worker figure, beside the same work in a
   hand-written aiokafka loop (``ceiling_loop.py``: the ceiling) and a raw
   aiokafka consume loop (no decoding) over the same topic.

With LFR_BENCH_BASELINE_ROOT, another checkout's worker and its aiokafka
ceiling loop run on the same input in the same run (before/after side by side
on a busy machine).

The worker figure comes from the broker's append times of the Scan records it
produced (first to last; the bench's scans topic uses LogAppendTime, since a
Scan otherwise carries its detection's timestamp), so start-up and watchlist
catch-up are excluded.
Run: ``.venv/bin/python bench/worker_bench.py`` (needs Kafka at LFR_KAFKA_BOOTSTRAP);
writes bench/results/worker.json. LFR_BENCH_PARTS=big,small picks the scenarios;
LFR_BENCH_ROUNDS=N runs each N times and adds the median of every figure.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from aiokafka import AIOKafkaConsumer, TopicPartition
from ceiling_loop import same_work_loop
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTopicPartition

from common.settings import Settings
from schemas.codec import encode
from schemas.templates import template_to_bytes
from streams.topics import create_topics

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "worker.json"
T0 = datetime(2025, 10, 1, 9, 0, tzinfo=UTC)
DIM = 512
BATCH = 500


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    rows = rng.standard_normal((n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def settings_for(tag: str) -> Settings:
    names = {
        f"topic_{t}": f"bench{tag}.{t}"
        for t in ("detections", "watchlist", "operations", "adjudications",
                  "scans", "alerts", "outcomes", "dlq")
    }  # fmt: skip
    state = Path(tempfile.mkdtemp(prefix="lfr-bench-"))
    return Settings(
        app_id=f"lfr-bench-{tag}", partitions=2, watchlist_partitions=2,
        worker_metrics_port=19000 + int(tag[:3], 16) % 1000, state_dir=state, **names,
        allow_dev_pseudonym_key=True,  # a benchmark's refs protect no one
    )  # fmt: skip


def env_of(settings: Settings) -> dict[str, str]:
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"LFR_{name.upper()}"] = str(value)
    return env


def write_results(path: Path, result: dict[str, Any]) -> None:
    """Note the load after the run, write the figures to ``path`` and print them."""
    result["machine"]["load_average_1m_after"] = os.getloadavg()[0]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def send_reference(
    producer: KafkaProducer,
    settings: Settings,
    watchlist: np.ndarray,
    starts_at: datetime,
    built_before: timedelta,
    *,
    site_id: str = "S1",
    watchlist_id: str = "W1",
) -> None:
    """One ACTIVE window at ``site_id`` from ``starts_at`` and its watchlist, flushed."""
    for i, row in enumerate(watchlist):
        entry = {
            "subject_id": f"p{i}", "watchlist_id": watchlist_id, "op": "ADD",
            "category": "missing", "wanted_since": starts_at - timedelta(days=3),
            "template": template_to_bytes(row), "template_model": "demo-512",
            "updated_at": starts_at - built_before,
        }  # fmt: skip
        producer.send(
            settings.topic_watchlist,
            key=f"{watchlist_id}:p{i}".encode(),
            value=encode("WatchlistEntry", entry),
        )
    window = {
        "deployment_id": f"D{site_id[1:]}", "site_id": site_id, "location": "bench",
        "use_case": "bench", "mode": "FIXED_REMOTE", "camera_ids": ["c1"],
        "watchlist_id": watchlist_id, "watchlist_size": len(watchlist), "match_threshold": 0.64,
        "authorised_by": "bench", "authorised_at": starts_at - timedelta(hours=1),
        "starts_at": starts_at, "ends_at": None, "status": "ACTIVE", "officers_present": 1,
        "updated_at": starts_at - timedelta(hours=1),
    }  # fmt: skip
    producer.send(
        settings.topic_operations, key=site_id.encode(), value=encode("OperationWindow", window)
    )
    producer.flush()


def reference_producer(settings: Settings) -> KafkaProducer:
    """A producer for the bench's reference data (large watchlists: big batches)."""
    return KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks=1, linger_ms=20,
        batch_size=1 << 20, max_request_size=1 << 22,
    )  # fmt: skip


def publish(settings: Settings, watchlist: np.ndarray, detections: int, hits: int) -> None:
    producer = reference_producer(settings)
    send_reference(producer, settings, watchlist, T0, built_before=timedelta(hours=2))
    rng = np.random.default_rng(7)
    faces = unit_rows(rng, 2000)
    for n in range(detections):
        vec = watchlist[n % len(watchlist)] if n < hits else faces[n % len(faces)]
        event = {
            "event_id": f"e{n}", "camera_id": "c1", "site_id": "S1",
            "captured_at": T0 + timedelta(milliseconds=n), "face_quality": 0.9,
            "template": template_to_bytes(vec), "template_model": "demo-512",
        }  # fmt: skip
        producer.send(settings.topic_detections, key=b"S1", value=encode("DetectionEvent", event))
    producer.flush()
    producer.close()


def scan_timestamps(settings: Settings, expected: int, timeout: float) -> list[int]:
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    parts = consumer.partitions_for_topic(settings.topic_scans) or set()
    tps = [KTopicPartition(settings.topic_scans, p) for p in parts]
    consumer.assign(tps)
    stamps: list[int] = []
    deadline = time.monotonic() + timeout
    # Read the scans only once they are all written: reading them while the worker runs
    # took a fifth of a core from it on 2 cores (kafka-python parses records in Python,
    # 9-12 us of CPU per record in bench/sink_bench.py, at 18,000 scans/s).
    while sum(consumer.end_offsets(tps).values()) < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    while len(stamps) < expected and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=1000).values():
            stamps.extend(m.timestamp for m in batch)
    consumer.close()
    return stamps


# LFR_BENCH_WORKER_LOG=DEBUG shows per-batch timings in the worker's log
WORKER_LOG_LEVEL = os.environ.get("LFR_BENCH_WORKER_LOG", "WARNING")


# LFR_BENCH_PYSPY=DIR samples the worker with py-spy (pip install py-spy) into DIR
PYSPY_DIR = os.environ.get("LFR_BENCH_PYSPY")


# LFR_BENCH_BASELINE_ROOT=DIR (another checkout, e.g. `git worktree add DIR main`) runs
# that checkout's worker too, on the same topics in the same run: before/after side by side
BASELINE_ROOT = os.environ.get("LFR_BENCH_BASELINE_ROOT")


def start_worker(settings: Settings, root: Path = ROOT) -> tuple[subprocess.Popen[bytes], Any]:
    """The worker of checkout ``root`` as a subprocess (the project's CLI); its log file."""
    log = open(settings.state_dir / "worker.log", "wb")
    env = {**os.environ, **env_of(settings)}
    if root != ROOT:
        env["PYTHONPATH"] = str(root)
    # fixed argv: this interpreter running the project's own CLI
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "streams.cli", "--log-level", WORKER_LOG_LEVEL, "worker"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    return proc, log


def stop_worker(proc: subprocess.Popen[bytes], log: Any) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def start_profiler(proc: subprocess.Popen[bytes], name: str) -> subprocess.Popen[bytes] | None:
    if not PYSPY_DIR:
        return None
    Path(PYSPY_DIR).mkdir(parents=True, exist_ok=True)
    out = Path(PYSPY_DIR) / f"{name}.txt"
    # fixed argv: the profiler from this environment, on the worker just started
    return subprocess.Popen(  # noqa: S603
        [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(proc.pid),
         "--format", "raw", "--rate", "200", "--nonblocking", "-o", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def run_worker(
    settings: Settings, detections: int, name: str = "worker", root: Path = ROOT
) -> dict[str, Any]:
    proc, log = start_worker(settings, root)
    profiler = start_profiler(proc, name)
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


def blas_setup() -> dict[str, Any]:
    """The BLAS numpy runs here: library, kernel, threads, and the variables that steer it."""
    from threadpoolctl import threadpool_info

    names = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")
    env = {name: os.environ.get(name) for name in names}
    libraries = [
        {k: lib.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
        for lib in threadpool_info()
        if lib.get("user_api") == "blas"
    ]
    return {"environment": env, "libraries": libraries}


def bare_matmul(watchlist: np.ndarray, repeats: int = 20) -> dict[str, Any]:
    """The batch product alone, on the BLAS threads the worker gives a product of this size.

    ``matching.scores_of`` is the worker's own product (on the threads
    LFR_WORKER_BLAS_THREADS gives a watchlist this large); one thread and the
    library's own count are measured beside it for reference.
    """
    from threadpoolctl import ThreadpoolController

    from streams.worker.matching import scores_of, threads_for, use_large_product_threads

    use_large_product_threads(Settings().worker_blas_threads)  # as `lfr worker` does
    queries = unit_rows(np.random.default_rng(3), BATCH)
    matrix = np.ascontiguousarray(watchlist)

    def rate(product: Any) -> float:
        product().argmax(axis=1)
        started = time.perf_counter()
        for _ in range(repeats):
            product().argmax(axis=1)
        return BATCH * repeats / (time.perf_counter() - started)

    blas = ThreadpoolController().select(user_api="blas")
    default_threads = max((lib["num_threads"] for lib in blas.info()), default=1)
    with blas.limit(limits=1):
        one_thread = rate(lambda: queries @ matrix.T)
    all_threads = rate(lambda: queries @ matrix.T)
    as_worker = rate(lambda: scores_of(queries, matrix))
    return {"batch": BATCH, "per_second": as_worker,
            "worker_blas_threads": threads_for(matrix.shape[0]),
            "per_second_one_thread": one_thread,
            f"per_second_{default_threads}_threads": all_threads,
            "blas": blas_setup()}  # fmt: skip


async def raw_consume(settings: Settings, expected: int) -> dict[str, Any]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap_servers, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")  # fmt: skip
    await consumer.start()
    try:
        tps = [TopicPartition(settings.topic_detections, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        count = 0
        started = time.perf_counter()
        while count < expected:
            for messages in (await consumer.getmany(timeout_ms=1000, max_records=5000)).values():
                count += len(messages)
        seconds = time.perf_counter() - started
    finally:
        await consumer.stop()
    return {"records": count, "seconds": seconds, "per_second": count / seconds}


def stamp_on_append(settings: Settings, topic: str) -> None:
    """Make the broker stamp each record of ``topic`` when written (the worker's output rate)."""
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(**settings.kafka_python_config())
    try:
        # kafka-python 3.0.12 checks keys against the topic's dynamic configs,
        # which list only those already set: a valid first setting is "unknown"
        admin.alter_configs([ConfigResource(
            ConfigResourceType.TOPIC, topic, configs={"message.timestamp.type": "LogAppendTime"},
        )], raise_on_unknown=False)  # fmt: skip
    finally:
        admin.close()


def scenario(watchlist_size: int, detections: int, hits: int) -> tuple[Settings, np.ndarray]:
    """Fresh topics holding the window, the watchlist and the detections."""
    settings = settings_for(uuid.uuid4().hex[:8])
    create_topics(settings)
    stamp_on_append(settings, settings.topic_scans)
    watchlist = unit_rows(np.random.default_rng(1), watchlist_size)
    publish(settings, watchlist, detections, hits)
    return settings, watchlist


def cleanup(settings: Settings) -> None:
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        names = [
            t
            for t in admin.list_topics()
            if t.startswith(f"bench{settings.app_id[-8:]}.") or t.startswith(settings.app_id)
        ]
        admin.delete_topics(names)
    finally:
        admin.close()


def baseline_worker(settings: Settings, detections: int, name: str) -> dict[str, Any] | None:
    """The baseline checkout's worker on the same input, with its own group and outputs."""
    if not BASELINE_ROOT:
        return None
    prefix = settings.topic_scans.rsplit(".", 1)[0]
    other = settings.model_copy(update={
        "app_id": f"{settings.app_id}-base", "topic_scans": f"{prefix}.scans-base",
        "topic_alerts": f"{prefix}.alerts-base", "topic_outcomes": f"{prefix}.outcomes-base",
        "worker_metrics_port": settings.worker_metrics_port + 1,
        "state_dir": Path(tempfile.mkdtemp(prefix="lfr-bench-base-")),
    })  # fmt: skip
    create_topics(other)
    stamp_on_append(other, other.topic_scans)
    result = run_worker(other, detections, f"{name}-baseline", Path(BASELINE_ROOT))
    result["root"] = BASELINE_ROOT
    return result


def baseline_ceiling(settings: Settings, detections: int) -> dict[str, Any] | None:
    """The baseline checkout's ``same_work_loop`` (its own code) on the same input."""
    if not BASELINE_ROOT:
        return None
    prefix = settings.topic_scans.rsplit(".", 1)[0]
    other = settings.model_copy(update={
        "app_id": f"{settings.app_id}-base-ceiling", "topic_scans": f"{prefix}.scans-bc",
        "topic_alerts": f"{prefix}.alerts-bc",
    })  # fmt: skip
    create_topics(other)
    code = (
        "import asyncio, json, sys\n"
        "from common.settings import Settings\n"
        "from ceiling_loop import same_work_loop\n"
        "print(json.dumps(asyncio.run(same_work_loop(Settings(), int(sys.argv[1])))))\n"
    )
    root = Path(BASELINE_ROOT)
    env = {**os.environ, **env_of(other), "PYTHONPATH": f"{root}:{root / 'bench'}"}
    # fixed argv: this interpreter running the baseline checkout's own ceiling loop
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code, str(detections)], cwd=root, env=env,
        check=True, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result["root"] = BASELINE_ROOT
    return result


def side_by_side(
    settings: Settings, detections: int, part: str, between: Callable[[], Any] | None = None
) -> dict[str, Any]:
    """The worker and the same-work loop, each from the baseline checkout first when one is set.

    The baseline goes first: a machine growing quieter would favour the branch.
    The result holds ``worker`` and ``aiokafka_same_work``, their ratio, and
    ``baseline_worker`` / ``baseline_aiokafka_same_work`` when a baseline ran.
    ``between()``, when given, runs before and after each worker; its results
    are in ``around_baseline_worker`` and ``around_worker`` (before, after).
    """
    measure = between or (lambda: None)
    before_baseline = measure() if BASELINE_ROOT else None
    baseline = baseline_worker(settings, detections, part)
    before = measure()
    worker = run_worker(settings, detections, part)
    after = measure()
    base_ceiling = baseline_ceiling(settings, detections)
    ceiling = asyncio.run(same_work_loop(settings, detections))
    result: dict[str, Any] = {
        "worker": worker, "aiokafka_same_work": ceiling,
        "ratio_worker_to_same_work": worker["per_second"] / ceiling["per_second"],
    }  # fmt: skip
    if baseline is not None:
        result["baseline_worker"] = baseline
        result["ratio_baseline_to_same_work"] = baseline["per_second"] / ceiling["per_second"]
    if base_ceiling is not None:
        result["baseline_aiokafka_same_work"] = base_ceiling
    if between is not None:
        result["around_worker"] = (before, after)
        if baseline is not None:
            result["around_baseline_worker"] = (before_baseline, before)
    return result


def big_watchlist(detections: int) -> dict[str, Any]:
    """16,000 x 512: the worker beside the same work in aiokafka and a bare matmul."""
    settings, watchlist = scenario(16_000, detections, hits=200)
    # The bare product runs right before and right after each worker, and each worker is
    # set against the mean of its two: this machine's BLAS speed drifts by a quarter
    # within minutes, and one measurement after every run made the ratio drift with it.
    try:
        result = side_by_side(
            settings, detections, "big", lambda: bare_matmul(watchlist)["per_second"]
        )
    finally:
        cleanup(settings)
    matmul = bare_matmul(watchlist)
    result["bare_numpy_matmul"] = matmul
    bare = statistics.mean(result["around_worker"])
    result["bare_around_worker_per_second"] = bare
    result["ratio_worker_to_matmul"] = result["worker"]["per_second"] / bare
    result["ratio_same_work_to_matmul"] = (
        result["aiokafka_same_work"]["per_second"] / matmul["per_second"]
    )
    if "baseline_worker" in result:
        base_bare = statistics.mean(result["around_baseline_worker"])
        result["bare_around_baseline_worker_per_second"] = base_bare
        result["ratio_baseline_to_matmul"] = result["baseline_worker"]["per_second"] / base_bare
    return result


def small_watchlist(detections: int) -> dict[str, Any]:
    """10 entries: the worker beside the same work in plain aiokafka and a bare consume loop."""
    settings, _ = scenario(10, detections, hits=100)
    try:
        result = side_by_side(settings, detections, "small")
        raw = asyncio.run(raw_consume(settings, detections))
    finally:
        cleanup(settings)
    result["raw_aiokafka_consume"] = raw
    result["ratio_worker_to_raw_consume"] = result["worker"]["per_second"] / raw["per_second"]
    return result


def main() -> int:
    parts = os.environ.get("LFR_BENCH_PARTS", "big,small").split(",")
    big_n = int(os.environ.get("LFR_BENCH_BIG_DETECTIONS", "20000"))
    small_n = int(os.environ.get("LFR_BENCH_SMALL_DETECTIONS", "50000"))
    result: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_1m": os.getloadavg()[0]},
    }  # fmt: skip
    rounds = int(os.environ.get("LFR_BENCH_ROUNDS", "1"))
    if rounds < 1:
        raise SystemExit("LFR_BENCH_ROUNDS must be at least 1")
    result["rounds"] = rounds
    if "big" in parts:
        result["watchlist_16000x512"] = in_rounds(rounds, lambda: big_watchlist(big_n))
    if "small" in parts:
        result["watchlist_10"] = in_rounds(rounds, lambda: small_watchlist(small_n))
    write_results(RESULTS, result)
    return 0


def in_rounds(rounds: int, run: Any) -> dict[str, Any]:
    """``run()`` once, or ``rounds`` times with the median of every figure beside the rounds.

    Each round has fresh topics and groups. On a shared machine one round's
    figures move by a quarter from run to run; the median of several, each a
    side-by-side of its own, is what a before/after should quote.
    """
    if rounds == 1:
        result: dict[str, Any] = run()
        return result
    each = []
    for number in range(rounds):
        each.append(run())
        print(f"round {number + 1} of {rounds}: {json.dumps(headline(each[-1]))}", flush=True)
    figures = [headline(round_) for round_ in each]
    common = [name for name in figures[0] if all(name in f for f in figures)]
    medians = {name: round(statistics.median(f[name] for f in figures), 3) for name in common}
    return {"median": medians, "rounds": each}


def headline(result: dict[str, Any]) -> dict[str, float]:
    """A round's rates (per second) and ratios, flat."""
    figures: dict[str, float] = {}
    for name, value in result.items():
        if isinstance(value, dict) and "per_second" in value:
            figures[f"{name}_per_second"] = round(value["per_second"], 1)
        elif name.startswith("ratio_"):
            figures[name] = round(value, 3)
        elif name.endswith("_per_second") and isinstance(value, float):
            figures[name] = round(value, 1)
    return figures


if __name__ == "__main__":
    sys.exit(main())
