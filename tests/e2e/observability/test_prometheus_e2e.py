"""A real Prometheus scraping a real worker and sink during a simulated run.

Not the shared Prometheus on 9090: this test starts its own ``prometheus``
child on a free port, scraping this test's worker and sink every second and
loading deploy/prometheus/rules.yml rendered with every ``for:`` shortened
to two seconds (the expressions are untouched, so the test proves the
rules' logic against real metrics; their production ``for:`` durations are
covered by rules_test.yml). Then:

- every dashboard panel's query, with the Grafana variables substituted,
  returns at least one non-NaN sample over the run (query_range);
- poison records fire LfrDeadLetters for the worker and for the sink;
- stopping the sink fires LfrSinkDown.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.settings import Settings
from streams.simulator import build_scenario
from streams.simulator.events import timeline
from streams.simulator.kafka_out import publish
from tests.conftest import free_port
from tests.integration.observability.harness import (
    Pipeline,
    http_get,
    observed_pipeline,
    wait_until,
)
from tests.unit.observability.promql import (
    RULES,
    PanelQuery,
    dashboard_files,
    metric_names,
    panel_queries,
    substitute,
)

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

NAMESPACE = "e2e"
SHORT_FOR = "2s"
# Defined but not yet observed by their process: their panels stay empty
# until it does. The test checks that they still are, so that this list
# shrinks as soon as the instrumentation lands.
AWAITING_INSTRUMENTATION: set[str] = set()


class Prometheus:
    """A ``prometheus`` child process and its HTTP API."""

    def __init__(self, settings: Settings, home: Path) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.skip("prometheus not installed (Debian: apt-get install prometheus)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        home.mkdir(parents=True, exist_ok=True)
        rules = home / "rules.yml"
        rules.write_text(yaml.safe_dump(shortened_rules(SHORT_FOR), sort_keys=False))
        config = home / "prometheus.yml"
        config.write_text(yaml.safe_dump(scrape_config(settings, rules)))
        self.log = home / "prometheus.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={home / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--storage.tsdb.retention.time=1h",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._ready, 60, "prometheus to become ready", self.log_tail())

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail("prometheus exited:\n" + self.log_tail())
        return http_get(f"{self.url}/-/ready", timeout=2)[0] == 200

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def api(self, path: str, **params: Any) -> Any:
        query = urllib.parse.urlencode(params)
        status, body = http_get(f"{self.url}/api/v1/{path}?{query}", timeout=10)
        assert status == 200, f"{path} {params}: HTTP {status} {body[:500]}"
        document = json.loads(body)
        assert document["status"] == "success", document
        return document["data"]

    def has_data(self, expr: str, start: float) -> bool:
        """True if ``expr`` has at least one non-NaN sample between ``start`` and now."""
        data = self.api("query_range", query=expr, start=start, end=time.time(), step=1)
        return any(
            not math.isnan(float(value))
            for series in data["result"]
            for _, value in series["values"]
        )

    def firing(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return [a for a in alerts if a["state"] == "firing"]

    def targets_up(self) -> set[str]:
        targets = self.api("targets")["activeTargets"]
        return {t["labels"]["job"] for t in targets if t["health"] == "up"}

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def shortened_rules(duration: str) -> dict[str, Any]:
    """rules.yml with every ``for:`` set to ``duration``, expressions unchanged."""
    document: dict[str, Any] = yaml.safe_load(RULES.read_text())
    for group in document["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = duration
    return document


def scrape_config(settings: Settings, rules: Path) -> dict[str, Any]:
    """The local stack's scrape layout (jobs lfr-worker / lfr-sink) on this test's ports."""

    def job(name: str, port: int) -> dict[str, Any]:
        return {
            "job_name": name,
            "static_configs": [
                {"targets": [f"127.0.0.1:{port}"], "labels": {"namespace": NAMESPACE}}
            ],
        }

    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [
            job("lfr-worker", settings.worker_metrics_port),
            job("lfr-sink", settings.sink_metrics_port),
        ],
    }


def dead_letter_alerts(firing: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {
        (a["labels"]["stage"], a["labels"]["reason"])
        for a in firing
        if a["labels"]["alertname"] == "LfrDeadLetters"
    }


@pytest.fixture
def pipeline(test_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[Pipeline]:
    with observed_pipeline(test_settings, tmp_path, "observability-e2e-key-0123456789ab") as p:
        yield p


@pytest.fixture
def prometheus(pipeline: Pipeline, tmp_path: Path) -> Iterator[Prometheus]:
    server = Prometheus(pipeline.settings, tmp_path / "prometheus")
    try:
        yield server
    finally:
        server.close()


def test_dashboards_and_alerts_on_a_real_prometheus(
    pipeline: Pipeline, prometheus: Prometheus
) -> None:
    s = pipeline.settings
    started = time.time()
    pipeline.start_worker()
    pipeline.start_sink()
    wait_until(
        lambda: prometheus.targets_up() >= {"lfr-worker", "lfr-sink"},
        30,
        "both targets scraped",
        prometheus.log_tail(),
    )

    counts = publish(timeline(build_scenario("small", 7)), s)
    assert counts, "the simulation published nothing"
    # poison: undecodable detections for the worker, an undecodable scan for the sink
    for i in range(3):
        pipeline.send_raw(s.topic_detections, b"croydon", b"\x00poison %d" % i)
    pipeline.send_raw(s.topic_scans, b"croydon", b"\x00poison")
    pipeline.flush()

    # every panel's query returns data once the run has gone through the pipeline
    queries: list[PanelQuery] = [q for path in dashboard_files() for q in panel_queries(path)]
    assert len(queries) >= 30
    awaiting = [q for q in queries if metric_names(q.expr) & AWAITING_INSTRUMENTATION]
    missing = [q for q in queries if q not in awaiting]

    def all_panels_have_data() -> bool:
        missing[:] = [q for q in missing if not prometheus.has_data(substitute(q.expr), started)]
        return not missing

    deadline = time.monotonic() + 120
    while not all_panels_have_data() and time.monotonic() < deadline:
        time.sleep(2)
    assert not missing, (
        "panels without data:\n"
        + "\n".join(f"{q.label}: {substitute(q.expr)}" for q in missing)
        + "\n"
        + pipeline.logs()
    )
    for query in awaiting:
        assert not prometheus.has_data(substitute(query.expr), started), (
            f"{query.label} has data now: remove its metric from AWAITING_INSTRUMENTATION"
        )

    # poison records fire the dead-letter alert, for the worker and for the sink
    wait_until(
        lambda: (
            {("worker.detections", "undecodable"), ("sink", "undecodable")}
            <= dead_letter_alerts(prometheus.firing())
        ),
        60,
        "LfrDeadLetters firing for worker.detections and sink",
        pipeline.logs(),
    )
    assert not any(a["labels"]["alertname"] == "LfrSinkDown" for a in prometheus.firing())

    # stop the sink: LfrSinkDown fires for its target
    pipeline.stop("sink")
    down = wait_until(
        lambda: [a for a in prometheus.firing() if a["labels"]["alertname"] == "LfrSinkDown"],
        60,
        "LfrSinkDown firing",
        prometheus.log_tail(),
    )
    assert down[0]["labels"]["job"] == "lfr-sink"
    assert down[0]["labels"]["namespace"] == NAMESPACE
    assert down[0]["labels"]["severity"] == "critical"
    assert down[0]["annotations"]["runbook_url"] == "docs/runbook.md#lfrsinkdown"
    assert not any(a["labels"]["alertname"] == "LfrWorkerDown" for a in prometheus.firing())
