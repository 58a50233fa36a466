"""Offline checks of the review findings the API-server tests cannot see (rendered values only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.helm.conftest import HelmError, Rendered, container_env, is_hook, pod_spec

Render = Callable[..., Rendered]


def _pod_templates(rendered: Rendered) -> list[dict[str, Any]]:
    """Every pod spec's owner: workloads, hook Jobs and the helm test Pod."""
    return [*rendered.workloads(), *rendered.of_kind("Pod")]


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"] if obj["kind"] == "Pod" else pod_spec(obj)


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = (
        obj["metadata"] if obj["kind"] == "Pod" else obj["spec"]["template"]["metadata"]
    )
    return meta


@pytest.mark.parametrize("name", ["minimal", "production", "multisite"])
def test_no_pod_gets_service_links(scenarios: dict[str, Rendered], name: str) -> None:
    for obj in _pod_templates(scenarios[name]):
        assert _spec(obj)["enableServiceLinks"] is False, obj["metadata"]["name"]


def test_per_process_secrets(scenarios: dict[str, Rendered]) -> None:
    production = scenarios["production"]
    worker = container_env(production, production.one("StatefulSet", "-worker"))
    sink = container_env(production, production.one("Deployment", "-sink"))
    assert not {k for k in worker if k.startswith("LFR_CLICKHOUSE_") and k.endswith("PASSWORD")}
    assert "LFR_PSEUDONYM_KEY" in worker
    assert "LFR_PSEUDONYM_KEY" not in sink
    assert "LFR_CLICKHOUSE_ANALYST_PASSWORD" not in sink
    assert "LFR_CLICKHOUSE_INGEST_PASSWORD" in sink


def test_static_membership_only_on_the_statefulset(scenarios: dict[str, Rendered]) -> None:
    production = scenarios["production"]
    env = {
        e["name"]: e
        for e in pod_spec(production.one("StatefulSet", "-worker"))["containers"][0]["env"]
    }
    assert env["LFR_WORKER_GROUP_INSTANCE_ID"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.name"}
    }
    # a Deployment's pod names change on every rollout: no static membership there
    minimal = scenarios["minimal"]
    assert "LFR_WORKER_GROUP_INSTANCE_ID" not in container_env(
        minimal, minimal.one("Deployment", "-worker")
    )


def test_worker_rollout_values(render: Render) -> None:
    rendered = render(
        {
            "worker": {
                "updateStrategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
                },
                "minReadySeconds": 45,
                "revisionHistoryLimit": 3,
            }
        }
    )
    spec = rendered.one("Deployment", "-worker")["spec"]
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    assert (spec["minReadySeconds"], spec["revisionHistoryLimit"]) == (45, 3)
    stateful = render(
        {"worker": {"persistence": {"enabled": True}, "updateStrategy": {"type": "OnDelete"}}}
    )
    assert stateful.one("StatefulSet", "-worker")["spec"]["updateStrategy"] == {"type": "OnDelete"}


def test_worker_grace_period_exceeds_faust_timeouts(scenarios: dict[str, Rendered]) -> None:
    # Faust's shutdown timeout and the consumer session timeout are 60 s each
    worker = scenarios["minimal"].one("Deployment", "-worker")
    assert pod_spec(worker)["terminationGracePeriodSeconds"] > 60


def test_keda_watches_every_input_topic_and_never_scales_to_zero(
    scenarios: dict[str, Rendered], render: Render
) -> None:
    scaled = scenarios["production"].one("ScaledObject")
    topics = [t["metadata"]["topic"] for t in scaled["spec"]["triggers"]]
    assert topics == ["lfr.detections", "lfr.operations", "lfr.adjudications"]
    assert len({t["name"] for t in scaled["spec"]["triggers"]}) == 3
    assert scaled["spec"]["minReplicaCount"] >= 1
    with pytest.raises(HelmError, match="minReplicas"):
        render({"worker": {"autoscaling": {"keda": {"enabled": True, "minReplicas": 0}}}})


def test_pdbs_never_block_drains(scenarios: dict[str, Rendered], render: Render) -> None:
    for pdb in scenarios["production"].of_kind("PodDisruptionBudget"):
        assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    with pytest.raises(HelmError, match=r"sink\.pdb\.minAvailable \(2\) must be below"):
        render({"sink": {"replicas": 2, "pdb": {"minAvailable": 2}}})
    with pytest.raises(HelmError, match=r"worker\.pdb\.minAvailable"):
        render(
            {
                "worker": {
                    "autoscaling": {"hpa": {"enabled": True, "minReplicas": 2}},
                    "pdb": {"minAvailable": 2},
                }
            }
        )
    assert render({"sink": {"replicas": 3, "pdb": {"minAvailable": 2}}}).one(
        "PodDisruptionBudget", "-sink"
    )


def test_global_registry_and_pull_secrets(render: Render) -> None:
    rendered = render(
        {
            "global": {
                "imageRegistry": "mirror.example",
                "imagePullSecrets": ["global-pull", {"name": "shared"}],
            },
            "imagePullSecrets": [{"name": "shared"}, {"name": "own"}],
        }
    )
    for obj in _pod_templates(rendered):
        spec = _spec(obj)
        assert spec["containers"][0]["image"].startswith("mirror.example/lfr-stream:")
        assert spec["imagePullSecrets"] == [
            {"name": "global-pull"},
            {"name": "shared"},
            {"name": "own"},
        ]
    # the chart's own registry wins over the global one
    own = render(
        {"global": {"imageRegistry": "mirror.example"}, "image": {"registry": "own.example"}}
    )
    assert pod_spec(own.one("Deployment", "-sink"))["containers"][0]["image"].startswith(
        "own.example/"
    )


def test_common_labels_and_annotations_reach_every_object_and_pod(render: Render) -> None:
    rendered = render({"commonLabels": {"team": "lfr"}, "commonAnnotations": {"owner": "platform"}})
    for obj in rendered.objects:
        meta = obj["metadata"]
        assert meta["labels"]["team"] == "lfr", f"{obj['kind']}/{meta['name']}"
        assert meta["annotations"]["owner"] == "platform", f"{obj['kind']}/{meta['name']}"
    for obj in _pod_templates(rendered):
        meta = _metadata(obj)
        assert meta["labels"]["team"] == "lfr"
        assert meta["annotations"]["owner"] == "platform"


def test_app_id_is_the_release_unless_set(scenarios: dict[str, Rendered], render: Render) -> None:
    config = scenarios["minimal"].one("ConfigMap", "-stream-config")["data"]
    assert config["LFR_APP_ID"] == "lfr-lfr-stream"
    kept = render({"config": {"appId": "lfr-stream"}}).one("ConfigMap", "-stream-config")["data"]
    assert kept["LFR_APP_ID"] == "lfr-stream"


def test_runbook_urls_are_absolute_when_a_base_is_given(render: Render) -> None:
    base = "https://runbooks.example/lfr/runbook.md"
    rendered = render(
        {"metrics": {"prometheusRule": {"enabled": True}}, "runbookBaseUrl": base + "/"}
    )
    rules = [r for g in rendered.one("PrometheusRule")["spec"]["groups"] for r in g["rules"]]
    urls = [
        r["annotations"]["runbook_url"] for r in rules if "runbook_url" in r.get("annotations", {})
    ]
    assert urls and all(u.startswith(base + "#") for u in urls)


def test_hooks_have_their_own_service_account_and_network_policy(
    scenarios: dict[str, Rendered],
) -> None:
    production = scenarios["production"]
    account = production.one("ServiceAccount", "-hooks")
    assert is_hook(account) and account["automountServiceAccountToken"] is False
    policy = production.one("NetworkPolicy", "-hooks")
    assert is_hook(policy)
    components = policy["spec"]["podSelector"]["matchExpressions"][2]["values"]
    for job in production.of_kind("Job"):
        labels = pod_spec(job) and job["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] in components
        assert pod_spec(job)["serviceAccountName"] == account["metadata"]["name"]
    main = production.one("NetworkPolicy", "-lfr-stream")
    assert policy["spec"]["egress"] == main["spec"]["egress"]
    # hook objects outlive a failed phase; only the next install or upgrade replaces them
    for obj in production.objects:
        if is_hook(obj) and obj["kind"] != "Job":
            assert (
                obj["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
                == "before-hook-creation"
            )


def test_helm_test_pod_checks_worker_sink_audit_kafka_and_clickhouse(
    scenarios: dict[str, Rendered],
) -> None:
    production = scenarios["production"]
    pod = production.one("Pod", "-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    env = container_env(production, pod)
    assert env["LFR_TEST_WORKER_HOST"] == "lfr-lfr-stream-worker"
    assert env["LFR_TEST_SINK_HOST"] == "lfr-lfr-stream-sink"
    assert env["LFR_TEST_AUDIT_HOST"] == "lfr-lfr-stream-audit"
    assert env["LFR_TEST_AUDIT_PORT"] == "9103"
    # the test pod's own policy lets it reach each port it checks
    egress = production.one("NetworkPolicy", "-test")["spec"]["egress"][0]["ports"]
    assert {p["port"] for p in egress} == {9101, 9102, 9103}
    assert "LFR_PSEUDONYM_KEY" not in env
    script = production.one("ConfigMap", "-test")["data"]["check_release.py"]
    assert "def kafka_answers" in script and "def clickhouse_answers" in script
