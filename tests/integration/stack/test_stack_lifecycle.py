"""`lfr stack up/status/down` on its own ports and state dir: twice, after kill -9, and failures."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# below the kernel's ephemeral range (32768-60999): a client connection's
# local port there would make these ports look taken
PORTS = {
    "LFR_KAFKA_BOOTSTRAP": "127.0.0.1:26092",
    "LFR_KAFKA_CONTROLLER_PORT": "26093",
    "LFR_CLICKHOUSE_PORT": "26000",
    "LFR_CLICKHOUSE_HTTP_PORT": "26123",
    "LFR_PROMETHEUS_PORT": "26090",
}


@pytest.fixture
def stack_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = {**os.environ, **PORTS, "LFR_STATE_DIR": str(tmp_path / "state"), "LFR_STACK": "local"}
    # share the session's jar cache so Maven is not asked again
    cache = Path(".lfr/kafka-lib").resolve()
    if cache.exists():
        (tmp_path / "state").mkdir()
        (tmp_path / "state" / "kafka-lib").symlink_to(cache)
    yield env
    lfr(env, "stack", "down")


def lfr(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def pids(state: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text().split()[0]) for p in (state / "run").glob("*.pid")}


def test_up_status_down_twice_and_after_kill_9(stack_env: dict[str, str]) -> None:
    state = Path(stack_env["LFR_STATE_DIR"])
    for _ in range(2):
        up = lfr(stack_env, "stack", "up")
        assert up.returncode == 0, up.stdout + up.stderr
        status = lfr(stack_env, "stack", "status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert status.stdout.count(" ready ") == 3, status.stdout
        again = lfr(stack_env, "stack", "up")  # idempotent
        assert again.returncode == 0 and again.stdout.count("already running") == 3, again.stdout
        down = lfr(stack_env, "stack", "down")
        assert down.returncode == 0 and down.stdout.count("stopped") == 3, down.stdout
        assert lfr(stack_env, "stack", "status").returncode == 1

    assert lfr(stack_env, "stack", "up").returncode == 0
    killed = pids(state)
    assert set(killed) == {"kafka", "clickhouse", "prometheus"}
    for pid in killed.values():
        os.kill(pid, signal.SIGKILL)
    time.sleep(1)
    status = lfr(stack_env, "stack", "status")
    assert status.returncode == 1 and status.stdout.count("stopped") == 3, status.stdout
    up = lfr(stack_env, "stack", "up")  # stale PID files are recognised and replaced
    assert up.returncode == 0, up.stdout + up.stderr
    assert up.stdout.count("started") == 3, up.stdout
    assert set(pids(state).values()).isdisjoint(killed.values())
    assert lfr(stack_env, "stack", "status").returncode == 0


def test_port_in_use_is_one_line_error(stack_env: dict[str, str]) -> None:
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", 26000))
        squatter.listen()
        result = lfr(stack_env, "stack", "up", "--only", "clickhouse")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("lfr: clickhouse: port 26000 is already in use"), result.stderr
    assert "Traceback" not in result.stderr


def test_half_formatted_kafka_storage_is_one_line_error(stack_env: dict[str, str]) -> None:
    data = Path(stack_env["LFR_STATE_DIR"]) / "kafka" / "data"
    data.mkdir(parents=True)
    (data / "__cluster_metadata-0").mkdir()  # storage without meta.properties
    result = lfr(stack_env, "stack", "up", "--only", "kafka")
    assert result.returncode == 1
    assert "half-formatted" in result.stderr and "lfr stack down --purge" in result.stderr
    assert "Traceback" not in result.stderr
    purge = lfr(stack_env, "stack", "down", "--purge")
    assert purge.returncode == 0
    assert lfr(stack_env, "stack", "up", "--only", "kafka").returncode == 0


def test_stale_pid_file_of_a_foreign_process_is_ignored(stack_env: dict[str, str]) -> None:
    run = Path(stack_env["LFR_STATE_DIR"]) / "run"
    run.mkdir(parents=True)
    # PID 1 exists but its start time differs: the file is stale, not ours
    (run / "prometheus.pid").write_text("1 0\n")
    result = lfr(stack_env, "stack", "up", "--only", "prometheus")
    assert result.returncode == 0, result.stderr
    assert "started" in result.stdout
    assert pids(Path(stack_env["LFR_STATE_DIR"]))["prometheus"] != 1


def test_up_that_fails_part_way_stops_what_it_started(stack_env: dict[str, str]) -> None:
    state = Path(stack_env["LFR_STATE_DIR"])
    with socket.socket() as squatter:  # Prometheus, started last, cannot bind
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", 26090))
        squatter.listen()
        result = lfr(stack_env, "stack", "up")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("lfr: prometheus: port 26090 is already in use"), result.stderr
    assert "stopped what this call started (clickhouse: stopped" in last, last
    assert "kafka: stopped" in last, last
    assert pids(state) == {}
    for port in (26092, 26000):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still served"
    assert lfr(stack_env, "stack", "up").returncode == 0  # nothing left behind blocks a retry
