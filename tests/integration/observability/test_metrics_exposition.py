"""``promtool check metrics`` on the /metrics of a real worker and a real sink."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.integration.observability.harness import Pipeline, wait_until
from tests.unit.observability.promql import defined_metrics

pytestmark = pytest.mark.integration


def promtool_check(text: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian: apt-get install prometheus)")
    return subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )


def sample_names(text: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.MULTILINE)}


def scrape_with(pipeline: Pipeline, port: int, needle: str) -> str | None:
    """The /metrics text on ``port`` once it contains ``needle``."""
    text = pipeline.metrics(port)
    return text if needle in text else None


def test_worker_and_sink_expositions_pass_promtool(pipeline: Pipeline) -> None:
    s = pipeline.settings
    pipeline.start_worker()
    pipeline.start_sink()
    # one bad record each, so that labelled series exist and are linted too
    pipeline.send_raw(s.topic_detections, b"site-x", b"\x00not avro")
    pipeline.send_raw(s.topic_scans, b"site-x", b"\x00not avro")
    pipeline.flush()
    worker = wait_until(
        lambda: scrape_with(pipeline, s.worker_metrics_port, "lfr_dead_letters_total{"),
        60,
        "a worker dead letter",
        pipeline.logs(),
    )
    sink = wait_until(
        lambda: scrape_with(pipeline, s.sink_metrics_port, "lfr_sink_dead_letters_total{"),
        60,
        "a sink dead letter",
        pipeline.logs(),
    )

    defined = defined_metrics()
    for name, text in (("worker", worker), ("sink", sink)):
        result = promtool_check(text)
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"
        assert result.stdout.strip() == "" and result.stderr.strip() == "", (name, result)
        names = sample_names(text)
        assert "process_cpu_seconds_total" in names and "process_resident_memory_bytes" in names
        lfr = {n for n in names if n.startswith("lfr_")}
        assert lfr, name
        # everything exposed is declared where the dashboards' tests look for it
        assert lfr <= defined, (name, lfr - defined)
    assert 'lfr_dead_letters_total{reason="undecodable",stage="worker.detections"}' in worker
    assert 'lfr_sink_dead_letters_total{reason="undecodable"}' in sink
    assert "lfr_build_info{" in worker


def test_promtool_rejects_a_bad_exposition() -> None:
    # the check above could not fail if promtool accepted anything
    bad = "# HELP lfr_things things\n# TYPE lfr_things counter\nlfr_things 1\n"
    result = promtool_check(bad)
    assert result.returncode != 0 and "_total" in result.stdout + result.stderr
