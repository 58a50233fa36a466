"""Dashboards and alert rules: the chart carries deploy/'s files, byte for byte."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.helm.conftest import CHART, ROOT, Helm, Rendered

DEPLOY_DASHBOARDS = ROOT / "deploy/grafana/dashboards"
DEPLOY_RULES = ROOT / "deploy/prometheus/rules.yml"
CHART_DASHBOARDS = CHART / "files/dashboards"
CHART_RULES = CHART / "files/prometheus/rules.yml"
SYNC = "run `bash .ci/helm.sh sync-files`"


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.json"))}


def test_chart_dashboards_are_the_deploy_dashboards() -> None:
    assert _files(CHART_DASHBOARDS) == _files(DEPLOY_DASHBOARDS), SYNC


def test_chart_rules_are_the_deploy_rules() -> None:
    if DEPLOY_RULES.exists():
        assert CHART_RULES.exists(), SYNC
        assert CHART_RULES.read_bytes() == DEPLOY_RULES.read_bytes(), SYNC
    else:
        assert not CHART_RULES.exists(), f"chart has rules that deploy/ lacks: {SYNC}"


DASHBOARD = {
    "title": "LFR sample",
    "uid": "lfr-sample",
    "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus"}]},
    "panels": [],
}
RULES = """\
groups:
  - name: lfr-sample
    rules:
      - alert: LfrSampleDeadLetters
        expr: sum by (reason) (rate(lfr_dead_letters_total[5m])) > 0
        for: 10m
        labels:
          severity: warning
        annotations:
          summary: "Dead letters ({{ $labels.reason }})"
"""


def test_dashboards_and_rules_render_from_the_chart_files(
    helm: Helm, chart_copy: Path, tmp_path: Path
) -> None:
    # only the samples below: the dashboards the chart ships are checked elsewhere
    for shipped in (chart_copy / "files/dashboards").glob("*.json"):
        shipped.unlink()
    for name in ("lfr_overview.json", "lfr-sink.json"):
        (chart_copy / "files/dashboards" / name).write_text(json.dumps(DASHBOARD, indent=2))
    (chart_copy / "files/prometheus/rules.yml").write_text(RULES)
    rendered = helm.template(CHART / "ci/production-values.yaml", chart=chart_copy)

    maps = [cm for cm in rendered.of_kind("ConfigMap") if "-dashboard-" in cm["metadata"]["name"]]
    assert sorted(cm["metadata"]["name"] for cm in maps) == [
        "lfr-lfr-stream-dashboard-lfr-overview",
        "lfr-lfr-stream-dashboard-lfr-sink",
    ]
    for cm in maps:
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["annotations"]["grafana_folder"] == "Live facial recognition"
        ((key, body),) = cm["data"].items()
        assert body == (chart_copy / "files/dashboards" / key).read_text()

    rule = rendered.one("PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"] == yaml.safe_load(RULES)


def test_no_files_render_nothing(
    scenarios: dict[str, Rendered], chart_copy: Path, helm: Helm
) -> None:
    for folder in ("files/dashboards", "files/prometheus"):
        for path in (chart_copy / folder).iterdir():
            if path.name != ".gitkeep":
                path.unlink()
    rendered = helm.template(CHART / "ci/production-values.yaml", chart=chart_copy)
    assert rendered.of_kind("PrometheusRule") == []
    assert [
        cm for cm in rendered.of_kind("ConfigMap") if "-dashboard-" in cm["metadata"]["name"]
    ] == []


def test_monitors_select_the_metrics_ports(
    scenarios: dict[str, Rendered], render: Callable[..., Rendered]
) -> None:
    monitor = scenarios["production"].one("ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    selector = monitor["spec"]["selector"]["matchLabels"]
    (components,) = monitor["spec"]["selector"]["matchExpressions"]
    assert components["key"] == "app.kubernetes.io/component"
    services = scenarios["production"].of_kind("Service")
    assert {s["metadata"]["labels"]["app.kubernetes.io/component"] for s in services} == {
        "worker",
        "sink",
        "audit",  # the source of LfrRetentionBreached
    }
    for service in services:
        assert selector.items() <= service["metadata"]["labels"].items()
        assert service["metadata"]["labels"]["app.kubernetes.io/component"] in components["values"]
        assert service["spec"]["ports"][0]["name"] == "metrics"
    pod_monitor = scenarios["multisite"].one("PodMonitor")
    assert pod_monitor["metadata"]["labels"]["release"] == "prometheus"
    assert pod_monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    pods = pod_monitor["spec"]["selector"]["matchExpressions"][0]["values"]
    for workload in scenarios["multisite"].of_kind("Deployment"):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] in pods
    # without the audit, the monitors select only what the release runs
    off = render({"audit": {"enabled": False}, "metrics": {"serviceMonitor": {"enabled": True}}})
    assert off.one("ServiceMonitor")["spec"]["selector"]["matchExpressions"][0]["values"] == [
        "worker",
        "sink",
    ]
