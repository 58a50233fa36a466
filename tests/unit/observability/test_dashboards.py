"""Grafana dashboards: conventions, valid PromQL, and only metrics the processes define."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.unit.observability.promql import (
    dashboard_files,
    defined_metrics,
    load_dashboard,
    metric_names,
    panel_queries,
    panels,
    substitute,
)

FILES = dashboard_files()
IDS = [p.name for p in FILES]
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
ALLOWED_RANGES = {"$__rate_interval", "$__range"}


def test_the_two_dashboards_exist() -> None:
    uids = {load_dashboard(p)["uid"] for p in FILES}
    assert {"lfr-pipeline-health", "lfr-deployments"} <= uids
    assert len(uids) == len(FILES), "two files share a uid"


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_fixed_uid_and_no_import_placeholders(path: Path) -> None:
    dashboard = load_dashboard(path)
    assert "__inputs" not in dashboard and "__requires" not in dashboard
    assert "${DS_" not in path.read_text(), "an exported datasource placeholder"
    assert dashboard["uid"] == path.stem, "uid must be fixed and equal the file name"
    assert len(dashboard["uid"]) <= 40
    assert dashboard.get("id") is None, "an instance-specific numeric id"
    assert dashboard["title"].startswith("LFR / ")


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_datasource_namespace_and_site_variables(path: Path) -> None:
    variables = {v["name"]: v for v in load_dashboard(path)["templating"]["list"]}
    datasource = variables["datasource"]
    assert datasource["type"] == "datasource" and datasource["query"] == "prometheus"
    for name in ("namespace", "site"):
        variable = variables[name]
        assert variable["type"] == "query"
        assert variable["datasource"] == DATASOURCE
        assert variable["includeAll"] and variable["allValue"] == ".*"
        assert f", {name})" in variable["query"]["query"]
    assert '{namespace=~"$namespace"}' in variables["site"]["query"]["query"]


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_every_panel_has_the_datasource_variable_a_unit_and_queries(path: Path) -> None:
    dashboard = load_dashboard(path)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in panels(dashboard):
        title = panel["title"]
        assert panel["datasource"] == DATASOURCE, title
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{title}: no unit"
        assert panel.get("description"), f"{title}: no description"
        assert panel["targets"], f"{title}: no query"
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, title
            assert target["expr"].strip(), title


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_queries_use_rate_interval_and_the_namespace_variable(path: Path) -> None:
    for query in panel_queries(path):
        ranges = set(re.findall(r"\[([^\]]+)\]", query.expr))
        assert ranges <= ALLOWED_RANGES, f"{query.label}: fixed range {ranges - ALLOWED_RANGES}"
        if re.search(r"\b(rate|irate)\(", query.expr):
            assert "[$__rate_interval]" in query.expr, query.label
        selectors = re.findall(r"\{([^}]*)\}", query.expr)
        assert selectors, f"{query.label}: a selector without labels"
        for selector in selectors:
            assert 'namespace=~"$namespace"' in selector, f"{query.label}: {selector}"


@pytest.mark.parametrize("path", FILES, ids=IDS)
def test_every_metric_a_panel_names_is_defined(path: Path) -> None:
    defined = defined_metrics()
    for query in panel_queries(path):
        names = metric_names(substitute(query.expr))
        assert names, query.label
        assert names <= defined, f"{query.label}: undefined {names - defined}"


def test_every_query_parses_as_promql(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian: apt-get install prometheus)")
    queries = [q for p in FILES for q in panel_queries(p)]
    rules = [
        {"record": f"lfr:dashboard_query:{i}", "expr": substitute(q.expr)}
        for i, q in enumerate(queries)
    ]
    path = tmp_path / "dashboard_queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_substitute_replaces_every_grafana_variable() -> None:
    expr = 'sum(rate(x{namespace=~"$namespace", site=~"${site}"}[$__rate_interval]))'
    assert substitute(expr) == 'sum(rate(x{namespace=~".*", site=~".*"}[1m]))'
    with pytest.raises(KeyError):
        substitute("x[$unknown]")


def test_dashboards_are_stable_json() -> None:
    for path in FILES:
        text = path.read_text()
        assert text == json.dumps(json.loads(text), indent=2) + "\n", f"{path.name}: reformat"
