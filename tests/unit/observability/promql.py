"""What the observability tests read: dashboards, rules, their PromQL, the defined metrics.

Shared by the unit tests (conventions, promtool) and the end-to-end test (every
panel's query against a real Prometheus), so both agree on how a Grafana
query becomes plain PromQL.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
DASHBOARDS = ROOT / "deploy/grafana/dashboards"
RULES = ROOT / "deploy/prometheus/rules.yml"
RULES_TEST = ROOT / "deploy/prometheus/rules_test.yml"
RUNBOOK = ROOT / "docs/runbook.md"

# What the e2e test substitutes for Grafana's variables: every namespace and
# site, a rate window several scrapes wide, a range as long as the run.
DEFAULT_VARIABLES = {
    "namespace": ".*",
    "site": ".*",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
}

# Identifiers in PromQL that are not metric names.
_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan", "atan2",
}  # fmt: skip
_LABEL_LISTS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(\s*\()?")


@dataclass(frozen=True)
class PanelQuery:
    """One target of one dashboard panel."""

    dashboard: str
    panel: str
    ref_id: str
    expr: str

    @property
    def label(self) -> str:
        return f"{self.dashboard} / {self.panel} / {self.ref_id}"


def dashboard_files() -> list[Path]:
    """Every dashboard JSON file under deploy/grafana/dashboards."""
    return sorted(DASHBOARDS.glob("*.json"))


def load_dashboard(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows; rows themselves excluded."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def panel_queries(path: Path) -> list[PanelQuery]:
    """Every target expression of every panel of one dashboard file."""
    dashboard = load_dashboard(path)
    out = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            out.append(PanelQuery(path.name, panel["title"], target["refId"], target["expr"]))
    return out


def substitute(expr: str, variables: dict[str, str] | None = None) -> str:
    """Grafana's ``$name`` / ``${name}`` variables replaced by plain values."""
    values = {**DEFAULT_VARIABLES, **(variables or {})}

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no value for Grafana variable ${name} in {expr!r}")
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of rules.yml."""
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (strings, label lists and ranges removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _LABEL_LISTS.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name, call = match.group(1), match.group(2)
        if call or name.lower() in _KEYWORDS:
            continue
        names.add(name)
    return names


def _sample_names(family_name: str, kind: str) -> set[str]:
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_count", "_sum", "_created"),
        "summary": ("", "_count", "_sum", "_created"),
        "info": ("_info",),
        "stateset": ("",),
        "enum": ("",),
    }[kind]
    return {family_name + suffix for suffix in suffixes}


def defined_metrics() -> set[str]:
    """Sample names the worker and the sink define, plus the standard ones they expose.

    Standard: prometheus_client's process and Python collectors (on the default
    registry of both processes) and Prometheus' own ``up``.
    """
    from prometheus_client import CollectorRegistry
    from prometheus_client.gc_collector import GCCollector
    from prometheus_client.metrics import MetricWrapperBase
    from prometheus_client.platform_collector import PlatformCollector
    from prometheus_client.process_collector import ProcessCollector

    import sinks.metrics
    import streams.audit
    import streams.worker.metrics

    names = {"up"}
    for module in (streams.worker.metrics, sinks.metrics, streams.audit):
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                for family in value.describe():
                    names |= _sample_names(family.name, family.type)
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    for family in registry.collect():
        names |= {sample.name for sample in family.samples}
    return names
