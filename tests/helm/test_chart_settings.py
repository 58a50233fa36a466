"""Every ``Settings`` field has a decision in the chart, and the set ones reach the pods.

The list of settings comes from ``Settings.model_fields``, so a field added to
common/settings.py fails these tests until the chart maps it (values.yaml,
values.schema.json) or the decision below says why it does not.
"""

from __future__ import annotations

import base64
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from common.settings import Settings
from tests.helm.conftest import CHART, Rendered, container_env, is_hook

# The chart sets these itself; their value path is given here.
CHART_MANAGED = {
    "state_dir": "worker.persistence.mountPath",
    "worker_store": "worker.persistence.enabled",
    "watchlist_purge_on_end": "worker.purgeOnEnd",
    # the pod's own name, on the StatefulSet only (a Deployment's pod names are not stable)
    "worker_group_instance_id": "worker.persistence.enabled",
}
# Only the local development stack reads these; they mean nothing in a cluster.
LOCAL_STACK_ONLY = frozenset(
    {"stack", "kafka_controller_port", "prometheus_port", "allow_dev_pseudonym_key"}
)
# Defaults that differ on purpose: loopback is the local stack, not a cluster; the app id
# (the consumer group) is the release's full name, so two releases never share a group.
CHART_DEFAULT_OVERRIDES = {
    "kafka_bootstrap": "kafka:9092",
    "clickhouse_host": "clickhouse",
    "app_id": None,
}
# The secrets each process gets, least privilege: the worker never talks to ClickHouse, the
# sink never pseudonymises, the hooks create topics and tables as the admin, and the audit
# reads as the analyst (here one is set; without it, as the admin: see test_chart_audit).
SECRETS_OF = {
    "worker": frozenset({"kafka_sasl_password", "kafka_ssl_key_password", "pseudonym_key"}),
    "sink": frozenset(
        {
            "kafka_sasl_password",
            "kafka_ssl_key_password",
            "clickhouse_password",
            "clickhouse_ingest_password",
        }
    ),
    "hook": frozenset({"kafka_sasl_password", "kafka_ssl_key_password", "clickhouse_password"}),
    "audit": frozenset(
        {"kafka_sasl_password", "kafka_ssl_key_password", "clickhouse_analyst_password"}
    ),
}

VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
SAMPLE_FILE = CHART / "Chart.yaml"
SCHEMA = yaml.safe_load((CHART / "values.schema.json").read_text())


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def env_name(name: str) -> str:
    return f"LFR_{name.upper()}"


def _types(annotation: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return tuple(t for t in typing.get_args(annotation) if t is not type(None))
    return (annotation,)


def is_secret(info: FieldInfo) -> bool:
    return SecretStr in _types(info.annotation)


SECRET_FIELDS = sorted(n for n, f in Settings.model_fields.items() if is_secret(f))
CONFIG_FIELDS = sorted(
    n
    for n, f in Settings.model_fields.items()
    if not is_secret(f) and n not in CHART_MANAGED and n not in LOCAL_STACK_ONLY
)


def sample(name: str, info: FieldInfo) -> Any:
    """A valid value for the field that differs from its default (JSON type)."""
    if name == "kafka_bootstrap":
        return "sample-kafka-0:19092,sample-kafka-1:19092"
    if name == "report_timezone":
        return "America/New_York"  # validated as an IANA zone
    kind = _types(info.annotation)[0]
    if typing.get_origin(kind) is Literal:
        choices = typing.get_args(kind)
        return choices[-1] if choices[-1] != info.default else choices[0]
    if kind is bool:
        return not info.default
    if kind is int:
        upper = [m.le for m in info.metadata if getattr(m, "le", None) is not None]
        value = int(info.default or 0) + 1
        return value - 2 if upper and value > upper[0] else value
    if kind is float:
        return float(info.default or 0) + 1.5
    if kind is Path:
        # the settings refuse a TLS file that does not exist: name a real one
        return str(SAMPLE_FILE)
    if kind is SecretStr:
        return f"sample-secret-{name}-0123456789"  # the pseudonym key needs 32 characters
    return f"sample-{name.replace('_', '-')}"


def as_env(value: Any) -> str:
    """How a YAML value reads as an environment string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def test_decisions_are_disjoint_and_cover_every_field() -> None:
    decided = [*SECRET_FIELDS, *CHART_MANAGED, *LOCAL_STACK_ONLY, *CONFIG_FIELDS]
    assert sorted(decided) == sorted(Settings.model_fields)
    assert len(decided) == len(set(decided))
    assert set(CHART_MANAGED) | LOCAL_STACK_ONLY <= set(Settings.model_fields), "stale decision"
    assert {"kafka_sasl_password", "clickhouse_password", "pseudonym_key"} <= set(SECRET_FIELDS)


@pytest.mark.parametrize("name", CONFIG_FIELDS)
def test_config_setting_has_a_value_path(name: str) -> None:
    key = camel(name)
    assert key in VALUES["config"], f"values.yaml lacks config.{key} ({env_name(name)})"
    assert key in SCHEMA["properties"]["config"]["properties"], f"schema lacks config.{key}"
    expected = CHART_DEFAULT_OVERRIDES.get(name, Settings.model_fields[name].default)
    if isinstance(expected, Path):
        expected = str(expected)
    assert VALUES["config"][key] == expected, f"config.{key} default differs from Settings"


@pytest.mark.parametrize("name", SECRET_FIELDS)
def test_secret_setting_has_a_secret_value_path(name: str) -> None:
    key = camel(name)
    assert key in VALUES["secrets"] and key in VALUES["secrets"]["existingSecretKeys"]
    assert key in SCHEMA["properties"]["secrets"]["properties"]
    assert key not in SCHEMA["properties"]["config"]["properties"], "a secret in the ConfigMap"


def test_no_value_maps_to_an_unknown_setting() -> None:
    assert sorted(VALUES["config"]) == sorted(camel(n) for n in CONFIG_FIELDS)
    secret_keys = set(VALUES["secrets"]) - {"existingSecret", "existingSecretKeys", "annotations"}
    assert secret_keys == {camel(n) for n in SECRET_FIELDS}


def test_chart_managed_paths_exist() -> None:
    for path in CHART_MANAGED.values():
        node: Any = VALUES
        for part in path.split("."):
            node = node[part]
        assert node is not None


@pytest.fixture(scope="module")
def everything_set(helm: Any, tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    """A render with every setting given a non-default value."""
    fields = Settings.model_fields
    values = {
        "config": {camel(n): sample(n, fields[n]) for n in CONFIG_FIELDS},
        "secrets": {camel(n): sample(n, fields[n]) for n in SECRET_FIELDS},
        "worker": {"persistence": {"mountPath": "/srv/lfr-state"}},
    }
    return typing.cast(
        Rendered, helm.template(values=values, tmp_dir=tmp_path_factory.mktemp("values"))
    )


def _resolve_secrets(rendered: Rendered, env: dict[str, str]) -> dict[str, str]:
    secrets = {o["metadata"]["name"]: o.get("data") or {} for o in rendered.of_kind("Secret")}
    out = {}
    for key, value in env.items():
        if value.startswith("<secret "):
            name, _, item = value.removeprefix("<secret ").removesuffix(">").partition("/")
            value = base64.b64decode(secrets[name][item]).decode()
        out[key] = value
    return out


def test_every_setting_reaches_every_pod(
    everything_set: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    fields = Settings.model_fields
    workloads = everything_set.workloads()
    assert {o["kind"] for o in workloads} == {"Deployment", "Job"}
    for obj in workloads:
        process = "hook" if is_hook(obj) else obj["metadata"]["name"].rsplit("-", 1)[1]
        secrets = SECRETS_OF[process]
        env = _resolve_secrets(everything_set, container_env(everything_set, obj))
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        for name in [*CONFIG_FIELDS, *SECRET_FIELDS]:
            if name in SECRET_FIELDS and name not in secrets:
                assert env_name(name) not in env, f"{where} gets {env_name(name)}"
                continue
            assert env.get(env_name(name)) == as_env(sample(name, fields[name])), (
                f"{where}: {env_name(name)}"
            )
        assert env["LFR_STATE_DIR"] == "/srv/lfr-state"
        for name in LOCAL_STACK_ONLY:
            assert env_name(name) not in env, f"{where} sets local-stack-only {env_name(name)}"

        # The pod's environment parses into the Settings the values described.
        for key in [k for k in os.environ if k.startswith("LFR_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            if key.startswith("LFR_"):
                monkeypatch.setenv(key, value)
        settings = Settings()
        for name in CONFIG_FIELDS:
            expected = sample(name, fields[name])
            got = getattr(settings, name)
            assert (str(got) if isinstance(got, Path) else got) == expected, f"{where}: {name}"
        for name in SECRET_FIELDS:
            if name not in secrets:
                continue
            secret = getattr(settings, name)
            assert secret.get_secret_value() == sample(name, fields[name])
        assert settings.state_dir == Path("/srv/lfr-state")
