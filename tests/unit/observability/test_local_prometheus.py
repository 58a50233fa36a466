"""The local stack's Prometheus config loads deploy/prometheus/rules.yml and passes promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from common.settings import Settings
from streams.localstack.prometheus import PrometheusService
from tests.unit.observability.promql import RULES, alert_rules


def test_local_config_scrapes_worker_and_sink_and_loads_the_rules(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, worker_metrics_port=19101, sink_metrics_port=19102)
    text = PrometheusService(settings).config()
    config = yaml.safe_load(text)
    assert [Path(p) for p in config["rule_files"]] == [RULES]
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]
    }
    # the job names the rules' job=~"(lfr-)?worker" / "(lfr-)?sink" selectors expect
    assert targets["lfr-worker"] == ["127.0.0.1:19101"]
    assert targets["lfr-sink"] == ["127.0.0.1:19102"]
    assert targets["lfr-audit"] == ["127.0.0.1:9103"]
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian: apt-get install prometheus)")
    path = tmp_path / "prometheus.yml"
    path.write_text(text)
    result = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout
