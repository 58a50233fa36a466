"""The ``helm test`` script (files/tests/check_release.py) against the real Kafka and ClickHouse.

The worker's, the sink's and the audit's /readyz are stood in for by small HTTP
servers on 127.0.0.1 that answer 200 or 503, as the processes do.
"""

from __future__ import annotations

import http.server
import importlib.util
import threading
import uuid
from collections.abc import Iterator
from types import ModuleType

import pytest

from common.settings import Settings
from streams.topics import create_topics
from tests.conftest import Stack, free_port
from tests.helm.conftest import CHART

SCRIPT = CHART / "files" / "tests" / "check_release.py"
TOPICS = ("detections", "watchlist", "operations", "adjudications", "scans", "alerts", "outcomes")


@pytest.fixture(scope="module")
def check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_release", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Readyz(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(self.status if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def readyz() -> Iterator[dict[str, tuple[int, type[_Readyz]]]]:
    """Three /readyz servers, "worker", "sink", "audit": name -> (port, handler class)."""
    servers = {}
    for name in ("worker", "sink", "audit"):
        handler = type(f"Readyz_{name}", (_Readyz,), {"status": 200})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers[name] = server
    yield {name: (int(s.server_address[1]), s.RequestHandlerClass) for name, s in servers.items()}  # type: ignore[misc]
    for server in servers.values():
        server.shutdown()
        server.server_close()


@pytest.fixture
def release_env(
    real_stack: Stack, readyz: dict[str, tuple[int, type[_Readyz]]], monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The test pod's environment: the stack's settings, topics of its own, every target."""
    suffix = uuid.uuid4().hex[:8]
    for key, value in real_stack.settings.to_env().items():
        monkeypatch.setenv(key, value)
    for topic in TOPICS:
        monkeypatch.setenv(f"LFR_TOPIC_{topic.upper()}", f"lfr-test-check.{topic}.{suffix}")
    monkeypatch.setenv("LFR_TOPIC_DLQ", f"lfr-test-check.dlq.{suffix}")
    # the app id names the Faust changelogs topics create makes: never the default one's
    monkeypatch.setenv("LFR_APP_ID", f"lfr-test-check-{suffix}")
    # in a release the migrate hook has made the database; here the server's own one
    monkeypatch.setenv("LFR_CLICKHOUSE_DATABASE", "default")
    monkeypatch.setenv("LFR_PARTITIONS", "1")
    monkeypatch.setenv("LFR_WATCHLIST_PARTITIONS", "1")
    for name, (port, _) in readyz.items():
        monkeypatch.setenv(f"LFR_TEST_{name.upper()}_HOST", "127.0.0.1")
        monkeypatch.setenv(f"LFR_TEST_{name.upper()}_PORT", str(port))
    settings = Settings()
    create_topics(settings)
    return settings


def test_a_healthy_release_passes(
    check: ModuleType, release_env: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert check.main() == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "ok   worker /readyz",
        "ok   sink /readyz",
        "ok   audit /readyz",
        "ok   Kafka",
        "ok   ClickHouse",
    ]


@pytest.mark.parametrize("unready", ["worker", "audit"])
def test_an_unready_process_fails(
    check: ModuleType,
    release_env: Settings,
    readyz: dict[str, tuple[int, type[_Readyz]]],
    capsys: pytest.CaptureFixture[str],
    unready: str,
) -> None:
    readyz[unready][1].status = 503
    assert check.main() == 1
    out = capsys.readouterr().out
    assert f"FAIL {unready} /readyz" in out and "HTTP 503" in out
    assert "ok   sink /readyz" in out


def test_a_missing_topic_fails(
    check: ModuleType, release_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = f"lfr-test-check.never-created.{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("LFR_TOPIC_OUTCOMES", missing)
    (problem,) = check.kafka_answers()
    assert missing in problem


def test_an_unreachable_clickhouse_fails(
    check: ModuleType, release_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LFR_CLICKHOUSE_PORT", str(free_port()))
    (problem,) = check.clickhouse_answers()
    assert problem.startswith("ClickHouse ")


def test_a_name_that_does_not_resolve_fails(check: ModuleType) -> None:
    (problem,) = check.http_ready("lfr-no-such-host.invalid", 9101)
    assert "does not resolve" in problem
