"""Each command that talks to Kafka or ClickHouse fails in one line, exit 1, within seconds.

Run as an operator would, as subprocesses: a wrong ClickHouse password, an
unknown database, an unreachable ClickHouse, an unreachable Kafka bootstrap
(a port nobody listens on), a SASL login the broker does not speak and TLS
against a plaintext listener. No traceback, unless ``--debug``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Stack, free_port

pytestmark = pytest.mark.integration

# the bound the issue sets; the time a command takes is reported, never asserted tighter
BOUND_S = 10.0


def _lfr(env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("LFR_")}
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "streams.cli", *args], env={**base, **env},
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    return done, time.monotonic() - started


def _assert_one_line(done: subprocess.CompletedProcess[str], took: float, *words: str) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("lfr: ") and "Traceback" not in done.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert took < BOUND_S, f"{took:.1f}s: {lines[0]}"
    return lines[0]


def _clickhouse(stack: Stack, **extra: str) -> dict[str, str]:
    s = stack.settings
    return {"LFR_KAFKA_BOOTSTRAP": s.kafka_bootstrap, "LFR_CLICKHOUSE_HOST": s.clickhouse_host,
            "LFR_CLICKHOUSE_PORT": str(s.clickhouse_port), **extra}  # fmt: skip


@pytest.mark.parametrize("command", [("report",), ("migrate",), ("rollup",), ("retention", "run")])
def test_wrong_clickhouse_password(real_stack: Stack, command: tuple[str, ...]) -> None:
    env = _clickhouse(real_stack, LFR_CLICKHOUSE_PASSWORD="not-the-password",
                      LFR_CLICKHOUSE_ANALYST_USER="analyst",
                      LFR_CLICKHOUSE_ANALYST_PASSWORD="not-the-password")  # fmt: skip
    _assert_one_line(*_lfr(env, *command), "authentication", "password")


def test_unknown_database_and_unreachable_clickhouse(real_stack: Stack) -> None:
    env = _clickhouse(real_stack, LFR_CLICKHOUSE_DATABASE="lfr_no_such_database")
    _assert_one_line(*_lfr(env, "report"), "unknown database", "lfr_no_such_database")
    env = _clickhouse(real_stack, LFR_CLICKHOUSE_PORT=str(free_port()))
    _assert_one_line(*_lfr(env, "report"), "not reachable", "refused")


@pytest.mark.parametrize(
    "command",
    [
        ("topics", "create"),
        ("consume", "--topic", "scans", "--timeout", "1"),
        ("publish", "--topic", "operations", "{file}"),
    ],  # fmt: skip
)
def test_unreachable_kafka_bootstrap(
    real_stack: Stack, tmp_path: Path, command: tuple[str, ...]
) -> None:
    records = tmp_path / "none.jsonl"
    records.write_text("")
    args = [part.replace("{file}", str(records)) for part in command]
    bootstrap = f"127.0.0.1:{free_port()}"
    line = _assert_one_line(*_lfr({"LFR_KAFKA_BOOTSTRAP": bootstrap}, *args), bootstrap)
    assert "no broker answers" in line and "ECONNREFUSED" in line


def test_kafka_login_and_tls_the_broker_does_not_speak(real_stack: Stack) -> None:
    sasl = {"LFR_KAFKA_BOOTSTRAP": real_stack.bootstrap,
            "LFR_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "LFR_KAFKA_SASL_MECHANISM": "PLAIN",
            "LFR_KAFKA_SASL_USERNAME": "lfr", "LFR_KAFKA_SASL_PASSWORD": "wrong"}  # fmt: skip
    _assert_one_line(*_lfr(sasl, "topics", "create"), "authentication failed")
    tls = {"LFR_KAFKA_BOOTSTRAP": real_stack.bootstrap, "LFR_KAFKA_SECURITY_PROTOCOL": "SSL"}
    _assert_one_line(*_lfr(tls, "topics", "create"), "TLS failed")


def test_debug_shows_the_traceback(real_stack: Stack) -> None:
    env = {"LFR_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}
    done, _ = _lfr(env, "--debug", "topics", "create")
    assert done.returncode == 1 and "Traceback" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("lfr: Kafka at")
