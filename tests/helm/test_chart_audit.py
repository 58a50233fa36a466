"""The retention audit in the chart: it runs, reads with its own secrets only, and is scraped."""

from __future__ import annotations

import base64
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from common.settings import Settings
from streams.audit import Readiness, StoreAge, serve_http
from tests.helm.apiserver import free_port
from tests.helm.conftest import CHART, Rendered, container_env, pod_spec

Render = Callable[..., Rendered]
COMPONENT = "app.kubernetes.io/component"
SECRETS = {
    "kafkaSaslPassword": "audit-test-kafka-password",
    "kafkaSslKeyPassword": "audit-test-key-pass-phrase",
    "clickhousePassword": "audit-test-admin-password",
    "clickhouseIngestPassword": "audit-test-ingest-password",
    "clickhouseAnalystPassword": "audit-test-analyst-password",
    "pseudonymKey": "audit-test-pseudonym-key-0123456789",
}
SECRET_ENV = {
    "LFR_KAFKA_SASL_PASSWORD",
    "LFR_KAFKA_SSL_KEY_PASSWORD",
    "LFR_CLICKHOUSE_PASSWORD",
    "LFR_CLICKHOUSE_INGEST_PASSWORD",
    "LFR_CLICKHOUSE_ANALYST_PASSWORD",
    "LFR_PSEUDONYM_KEY",
}


def _audit(rendered: Rendered) -> dict[str, Any]:
    return rendered.one("Deployment", "-audit")


def _resolved_env(rendered: Rendered, obj: dict[str, Any]) -> dict[str, str]:
    """The container's environment with the chart-created Secret's values filled in."""
    secrets = {o["metadata"]["name"]: o.get("data") or {} for o in rendered.of_kind("Secret")}
    env = {}
    for key, value in container_env(rendered, obj).items():
        if value.startswith("<secret "):
            name, _, item = value.removeprefix("<secret ").removesuffix(">").partition("/")
            value = base64.b64decode(secrets[name][item]).decode()
        env[key] = value
    return env


@pytest.fixture
def lfr_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[dict[str, str]], Settings]]:
    """Settings parsed from exactly the given LFR_* environment."""

    def parse(env: dict[str, str]) -> Settings:
        for key in [k for k in os.environ if k.startswith("LFR_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            if key.startswith("LFR_"):
                monkeypatch.setenv(key, value)
        return Settings()

    yield parse


def test_audit_runs_the_served_retention_audit(scenarios: dict[str, Rendered]) -> None:
    rendered = scenarios["minimal"]
    audit = _audit(rendered)
    assert audit["spec"]["replicas"] == 1
    container = pod_spec(audit)["containers"][0]
    args = container["args"]
    assert args[args.index("audit") :][:6] == [
        "audit", "retention", "--serve", "9103", "--interval", "300"
    ]  # fmt: skip
    assert container["ports"] == [{"name": "metrics", "containerPort": 9103, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    service = rendered.one("Service", "-audit")
    assert service["spec"]["ports"][0]["port"] == 9103
    assert service["spec"]["selector"] == audit["spec"]["selector"]["matchLabels"]
    # an audit that cannot read a store is unready, and must still be scraped
    assert service["spec"]["publishNotReadyAddresses"] is True
    # the same settings as every other process
    env = container_env(rendered, audit)
    worker_env = container_env(rendered, rendered.one("Deployment", "-worker"))
    assert {k: v for k, v in env.items() if k not in SECRET_ENV} == {
        k: v for k, v in worker_env.items() if k not in SECRET_ENV
    }


def test_audit_interval_and_port_are_values(render: Render) -> None:
    rendered = render({"audit": {"intervalSeconds": 42.5, "port": 9203}})
    container = pod_spec(_audit(rendered))["containers"][0]
    args = container["args"]
    assert args[args.index("--serve") + 1] == "9203"
    assert args[args.index("--interval") + 1] == "42.5"
    assert container["ports"][0]["containerPort"] == 9203
    assert rendered.one("Service", "-audit")["spec"]["ports"][0]["port"] == 9203
    # a whole number of seconds stays an integer, not 3.6e+03
    args = pod_spec(_audit(render({"audit": {"intervalSeconds": 3600}})))["containers"][0]["args"]
    assert args[args.index("--interval") + 1] == "3600"


@pytest.mark.parametrize("analyst", [None, "lfr_analyst"])
def test_audit_gets_only_its_secrets_and_reads_as_the_analyst(
    render: Render, lfr_env: Callable[[dict[str, str]], Settings], analyst: str | None
) -> None:
    rendered = render(
        {
            "config": {
                "clickhouseUser": "lfr_admin",
                "clickhouseAnalystUser": analyst,
                # the settings refuse a key pass phrase without mutual TLS files that exist
                "kafkaSslKeyfile": str(CHART / "Chart.yaml"),
                "kafkaSslCertfile": str(CHART / "Chart.yaml"),
            },
            "secrets": SECRETS,
        }
    )
    env = _resolved_env(rendered, _audit(rendered))
    # Kafka to read the topics, and one ClickHouse login: the analyst's, else the admin's
    # (Settings.clickhouse_config falls back to it); never the pseudonym key or the ingest login
    clickhouse = "LFR_CLICKHOUSE_ANALYST_PASSWORD" if analyst else "LFR_CLICKHOUSE_PASSWORD"
    assert SECRET_ENV & set(env) == {
        "LFR_KAFKA_SASL_PASSWORD",
        "LFR_KAFKA_SSL_KEY_PASSWORD",
        clickhouse,
    }
    login = lfr_env(env).clickhouse_config("analyst")
    if analyst:
        assert (login["user"], login["password"]) == (analyst, SECRETS["clickhouseAnalystPassword"])
    else:
        assert (login["user"], login["password"]) == ("lfr_admin", SECRETS["clickhousePassword"])


def test_audit_secret_refs_under_an_existing_secret(render: Render) -> None:
    def refs(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
        audit = _audit(render({"secrets": {"existingSecret": "creds"}, **values}))
        return {
            e["name"]: e["valueFrom"]["secretKeyRef"]
            for e in pod_spec(audit)["containers"][0]["env"]
            if "secretKeyRef" in e.get("valueFrom", {})
        }

    # no analyst user: the admin's password, optional like everywhere else
    admin = refs({})
    assert set(admin) == {
        "LFR_KAFKA_SASL_PASSWORD",
        "LFR_KAFKA_SSL_KEY_PASSWORD",
        "LFR_CLICKHOUSE_PASSWORD",
    }
    assert admin["LFR_CLICKHOUSE_PASSWORD"]["optional"] is True
    # a named analyst: its password, required (a pod without it could never log in)
    analyst = refs({"config": {"clickhouseAnalystUser": "lfr_analyst"}})
    assert set(analyst) == {
        "LFR_KAFKA_SASL_PASSWORD",
        "LFR_KAFKA_SSL_KEY_PASSWORD",
        "LFR_CLICKHOUSE_ANALYST_PASSWORD",
    }
    assert analyst["LFR_CLICKHOUSE_ANALYST_PASSWORD"] == {
        "name": "creds",
        "key": "LFR_CLICKHOUSE_ANALYST_PASSWORD",
        "optional": False,
    }


def test_audit_is_scraped_and_inside_the_network_policy(scenarios: dict[str, Rendered]) -> None:
    production = scenarios["production"]
    audit = _audit(production)
    pod_labels = audit["spec"]["template"]["metadata"]["labels"]
    service = production.one("Service", "-audit")
    monitor = production.one("ServiceMonitor")["spec"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert "audit" in monitor["selector"]["matchExpressions"][0]["values"]
    assert monitor["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"] == "metrics"
    # the policy covers the pod: egress to Kafka and ClickHouse, ingress to "metrics" for scrapes
    policy = production.one("NetworkPolicy", "-lfr-stream")["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert {"port": "metrics", "protocol": "TCP"} in policy["ingress"][0]["ports"]
    egress_ports = {p["port"] for rule in policy["egress"] for p in rule["ports"]}
    assert {9093, 9440} <= egress_ports
    container = pod_spec(audit)["containers"][0]
    assert container["ports"][0]["name"] == "metrics"
    # TLS to Kafka: the CA is mounted like in every other pod
    assert "kafka-tls" in {m["name"] for m in container["volumeMounts"]}
    pod_monitor = scenarios["multisite"].one("PodMonitor")["spec"]
    assert pod_labels[COMPONENT] in pod_monitor["selector"]["matchExpressions"][0]["values"]


def test_disabled_audit_renders_nothing(render: Render) -> None:
    rendered = render(
        {
            "audit": {"enabled": False},
            "networkPolicy": {"enabled": True},
            "metrics": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}},
        }
    )
    assert [o for o in rendered.objects if o["metadata"]["name"].endswith("-audit")] == []
    assert [
        o for o in rendered.objects if (o["metadata"].get("labels") or {}).get(COMPONENT) == "audit"
    ] == []
    for kind in ("ServiceMonitor", "PodMonitor"):
        selector = rendered.one(kind)["spec"]["selector"]
        assert "audit" not in selector["matchExpressions"][0]["values"]
    # and `helm test` does not look for it
    test_pod = container_env(rendered, rendered.one("Pod", "-test"))
    assert not [k for k in test_pod if k.startswith("LFR_TEST_AUDIT_")]
    ports = rendered.one("NetworkPolicy", "-test")["spec"]["egress"][0]["ports"]
    assert {p["port"] for p in ports} == {9101, 9102}


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_the_audit_answers_the_paths_the_chart_probes(scenarios: dict[str, Rendered]) -> None:
    container = pod_spec(_audit(scenarios["minimal"]))["containers"][0]
    liveness = container["livenessProbe"]["httpGet"]["path"]
    readiness_path = container["readinessProbe"]["httpGet"]["path"]
    port = free_port()
    readiness = Readiness()
    server = serve_http(port, readiness, host="127.0.0.1")
    base = f"http://127.0.0.1:{port}"
    try:
        assert _get(base + liveness)[0] == 200
        # not ready until an audit has read every store
        assert _get(base + readiness_path) == (503, "no audit has finished yet\n")
        readiness.audited([StoreAge("detections", "lfr.detections", 3, 30.0, 20.0)])
        assert _get(base + readiness_path) == (200, "audited 1 stores, 1 in breach\n")
        readiness.failed(ConnectionRefusedError("clickhouse:9000"))
        status, body = _get(base + readiness_path)
        assert status == 503 and "ConnectionRefusedError" in body
        # alive while an audit fails: a restart would not make the store answer
        assert _get(base + liveness)[0] == 200
        status, body = _get(base + "/metrics")
        assert status == 200 and "lfr_retention_breaches" in body
    finally:
        server.shutdown()
        server.server_close()
