"""rules.yml: promtool accepts it, its unit tests pass, every alert is complete."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.unit.observability.promql import (
    RULES,
    RULES_TEST,
    RUNBOOK,
    alert_rules,
    defined_metrics,
    metric_names,
)

SEVERITIES = {"critical", "warning", "info"}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (Debian: apt-get install prometheus)")
    return path


def runbook_anchors() -> set[str]:
    """GitHub-style anchors of the runbook's headings."""
    anchors = set()
    for line in RUNBOOK.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def test_promtool_check_rules_accepts_the_file() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", str(RULES_TEST)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested_firing_and_quiet() -> None:
    tests = yaml.safe_load(RULES_TEST.read_text())["tests"]
    fires: set[str] = set()
    quiet: set[str] = set()
    for group in tests:
        for case in group.get("alert_rule_test", []):
            (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
    alerts = {rule["alert"] for rule in alert_rules()}
    assert alerts - fires == set(), "alerts never shown firing in rules_test.yml"
    assert alerts - quiet == set(), "alerts never shown quiet in rules_test.yml"


def test_every_alert_has_severity_summary_description_and_a_runbook_section() -> None:
    anchors = runbook_anchors()
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in alert_rules():
        name = rule["alert"]
        assert name.startswith("Lfr"), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and annotations["description"].strip(), name
        url = annotations["runbook_url"]
        assert url == f"docs/runbook.md#{name.lower()}", (name, url)
        assert name.lower() in anchors, f"docs/runbook.md has no section for {name}"


def test_runbook_sections_say_what_to_check_and_fix() -> None:
    text = RUNBOOK.read_text()
    for rule in alert_rules():
        name = rule["alert"]
        section = text.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        for part in ("Meaning", "Check", "Fix"):
            assert f"**{part}**" in section, f"{name}: runbook section lacks {part}"


def test_every_metric_a_rule_names_is_defined() -> None:
    defined = defined_metrics()
    for rule in alert_rules():
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= defined, (rule["alert"], names - defined)


def test_metric_name_extraction() -> None:
    expr = (
        'sum by (namespace, le) (rate(lfr_x_bucket{job=~"a|b", stage="detections"}[5m])) '
        "unless on (namespace) up == 0 or label_replace(lfr_y_total offset 15m, "
        '"stage", "sink", "", "") and time() - lfr_z / 1000 > 36 * 3600'
    )
    assert metric_names(expr) == {"lfr_x_bucket", "up", "lfr_y_total", "lfr_z"}
