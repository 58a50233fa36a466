"""values.schema.json accepts the shipped values and rejects what could never work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.helm.conftest import CHART, CI_VALUES, Helm, HelmError

SCHEMA = json.loads((CHART / "values.schema.json").read_text())


@pytest.mark.parametrize("path", [CHART / "values.yaml", *CI_VALUES], ids=lambda p: p.name)
def test_shipped_values_are_valid(path: Path) -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    values = yaml.safe_load(path.read_text()) or {}
    jsonschema.Draft7Validator(SCHEMA).validate(values)


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("wrong type", {"worker": {"replicas": "two"}}, "replicas"),
    ("wrong type of a setting", {"config": {"partitions": "six"}}, "partitions"),
    ("wrong enum", {"config": {"kafkaSecurityProtocol": "TLS"}}, "kafkaSecurityProtocol"),
    ("unknown top-level key", {"workers": {"replicas": 2}}, "workers"),
    ("unknown worker key", {"worker": {"replica": 2}}, "replica"),
    ("unknown setting", {"config": {"kafkaBootstrapServers": "k:9092"}}, "kafkaBootstrapServers"),
    ("secret in the ConfigMap", {"config": {"pseudonymKey": "x"}}, "pseudonymKey"),
    ("pseudonym key too short", {"secrets": {"pseudonymKey": "too-short"}}, "pseudonymKey"),
    ("negative worker replicas", {"worker": {"replicas": -1}}, "replicas"),
    ("negative sink replicas", {"sink": {"replicas": -1}}, "replicas"),
    ("negative max replicas", {"worker": {"autoscaling": {"keda": {"maxReplicas": -3}}}}, "max"),
    ("port out of range", {"config": {"workerMetricsPort": 70000}}, "workerMetricsPort"),
]


@pytest.mark.parametrize(("case", "values", "mentions"), INVALID, ids=[c[0] for c in INVALID])
def test_helm_rejects_invalid_values(
    helm: Helm, tmp_path: Path, case: str, values: dict[str, Any], mentions: str
) -> None:
    with pytest.raises(HelmError) as failure:
        helm.template(CHART / "ci/minimal-values.yaml", values=values, tmp_dir=tmp_path)
    assert "schema" in str(failure.value).lower(), case
    assert mentions in str(failure.value), case
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(SCHEMA).validate(values)


IMPOSSIBLE: list[tuple[str, dict[str, Any], str]] = [
    ("no pseudonym key", {"secrets": {"pseudonymKey": ""}}, "pseudonymKey"),
    (
        "SASL without a password",
        {
            "config": {
                "kafkaSecurityProtocol": "SASL_SSL",
                "kafkaSaslMechanism": "PLAIN",
                "kafkaSaslUsername": "u",
            }
        },
        "kafkaSaslPassword",
    ),
    (
        "SASL without a user",
        {
            "config": {"kafkaSecurityProtocol": "SASL_PLAINTEXT"},
            "secrets": {"kafkaSaslPassword": "p"},
        },
        "kafkaSaslUsername",
    ),
    (
        "more KEDA workers than partitions",
        {
            "config": {"partitions": 4},
            "worker": {"autoscaling": {"keda": {"enabled": True, "maxReplicas": 5}}},
        },
        "exceeds config.partitions",
    ),
    (
        "more HPA workers than partitions",
        {"worker": {"autoscaling": {"hpa": {"enabled": True, "maxReplicas": 7}}}},
        "exceeds config.partitions",
    ),
    (
        "two autoscalers",
        {"worker": {"autoscaling": {"hpa": {"enabled": True}, "keda": {"enabled": True}}}},
        "not both",
    ),
]


@pytest.mark.parametrize(("case", "values", "mentions"), IMPOSSIBLE, ids=[c[0] for c in IMPOSSIBLE])
def test_helm_refuses_settings_that_cannot_run(
    helm: Helm, tmp_path: Path, case: str, values: dict[str, Any], mentions: str
) -> None:
    with pytest.raises(HelmError) as failure:
        helm.template(CHART / "ci/minimal-values.yaml", values=values, tmp_dir=tmp_path)
    assert mentions in str(failure.value), case
