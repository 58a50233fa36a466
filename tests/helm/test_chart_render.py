"""Every scenario lints, renders, and renders valid Kubernetes and CRD objects."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.helm.apiserver import crds_dir
from tests.helm.conftest import CHART, CI_VALUES, KUBE_VERSION, Helm, Rendered

# Kinds whose schema is a CRD, not part of Kubernetes.
CRD_FILES = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_servicemonitors.yaml",
    ("monitoring.coreos.com/v1", "PodMonitor"): "monitoring.coreos.com_podmonitors.yaml",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com_prometheusrules.yaml",
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_scaledobjects.yaml",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda.sh_triggerauthentications.yaml",
}
CRD_DIR = crds_dir()


def _strict(schema: Any) -> Any:
    """The CRD schema with unknown fields rejected, as the API server prunes them.

    An object that lists ``properties`` without ``additionalProperties`` or
    ``x-kubernetes-preserve-unknown-fields`` would silently drop a misspelt
    field in a cluster; here it fails the test instead.
    """
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _strict(value) for key, value in schema.items()}
    pattern = out.get("pattern")
    if isinstance(pattern, str) and "(?i)" in pattern:
        # Go allows an inline flag anywhere; Python only at the start.
        out["pattern"] = "(?i)" + pattern.replace("(?i)", "")
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    path = CRD_DIR / CRD_FILES[(api_version, kind)]
    crd = yaml.safe_load(path.read_text())
    version = api_version.rsplit("/", 1)[1]
    for served in crd["spec"]["versions"]:
        if served["name"] == version:
            schema: dict[str, Any] = copy.deepcopy(served["schema"]["openAPIV3Schema"])
            return _strict(schema)
    raise AssertionError(f"{path.name} serves no {version}")


def test_kubernetes_version_is_known_offline() -> None:
    # kubernetes-validate ships schemas per minor version; pin CI to one it has.
    assert kubernetes_validate.utils.latest_version() >= kubernetes_validate.utils.major_minor(
        KUBE_VERSION
    )


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_lint_strict(helm: Helm, values: Path) -> None:
    helm.run("lint", "--strict", "--kube-version", KUBE_VERSION, "-f", str(values))


def test_scenarios_cover_the_promised_features(scenarios: dict[str, Rendered]) -> None:
    assert set(scenarios) >= {"minimal", "production", "multisite"}
    production = scenarios["production"]
    kinds = {o["kind"] for o in production.objects}
    assert {"ScaledObject", "ServiceMonitor", "NetworkPolicy", "StatefulSet"} <= kinds
    config = production.one("ConfigMap", "-stream-config")["data"]
    assert config["LFR_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert production.find("Secret", "-stream-secrets") is None  # existingSecret
    workers = scenarios["multisite"].one("Deployment", "-worker")
    assert workers["spec"]["replicas"] > 1


@pytest.mark.parametrize("name", ["minimal", "production", "multisite"])
def test_builtin_kinds_validate_strictly(scenarios: dict[str, Rendered], name: str) -> None:
    checked = 0
    for obj in scenarios[name].objects:
        if (obj["apiVersion"], obj["kind"]) in CRD_FILES:
            continue
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message} at {exc.path}")
        checked += 1
    assert checked >= 8


def test_custom_resources_validate_against_their_crds(
    scenarios: dict[str, Rendered], chart_copy: Path, helm: Helm, tmp_path: Path
) -> None:
    assert CRD_DIR.is_dir(), f"CRD schemas expected at {CRD_DIR}"
    (chart_copy / "files/prometheus/rules.yml").write_text(SAMPLE_RULES)
    rendered = [
        *scenarios.values(),
        helm.template(CHART / "ci/production-values.yaml", chart=chart_copy),
        helm.template(
            CHART / "ci/production-values.yaml",
            values={"metrics": {"podMonitor": {"enabled": True}}},
            tmp_dir=tmp_path,
        ),
    ]
    seen: set[str] = set()
    for render in rendered:
        for obj in render.objects:
            key = (obj["apiVersion"], obj["kind"])
            if key not in CRD_FILES:
                continue
            try:
                jsonschema.Draft7Validator(crd_schema(*key)).validate(obj)
            except jsonschema.ValidationError as exc:
                pytest.fail(f"{obj['kind']}: {exc.message} at {list(exc.absolute_path)}")
            seen.add(obj["kind"])
    assert seen == {k for _, k in CRD_FILES}


def test_strict_crd_schema_rejects_a_misspelt_field() -> None:
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "x"},
        "spec": {"selector": {}, "endpoints": [{"port": "metrics", "intervall": "30s"}]},
    }
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(
            crd_schema("monitoring.coreos.com/v1", "ServiceMonitor")
        ).validate(monitor)


SAMPLE_RULES = """\
groups:
  - name: lfr-sample
    rules:
      - alert: LfrSampleDeadLetters
        expr: sum(rate(lfr_dead_letters_total[5m])) > 0
        for: 10m
        labels:
          severity: warning
        annotations:
          summary: "Dead letters on {{ $labels.stage }}"
"""
