"""The chart against a real Kubernetes API server: dry-run, install, upgrade, rollback.

The API server validates, defaults and admits every object as a cluster would
(schemas, CRDs, RBAC, the ServiceAccount admission plugin); no pod runs, so the
stand-in Job controller (``kube.jobs``) completes the hook Jobs. Each test
installs into namespaces of its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.conftest import CHART, CI_VALUES, HelmError, Kube

RELEASE = "lfr"
FULLNAME = "lfr-lfr-stream"
MINIMAL = CHART / "ci" / "minimal-values.yaml"
PRODUCTION = CHART / "ci" / "production-values.yaml"
TIMEOUT = "120s"


def _status(kube: Kube, namespace: str) -> dict[str, Any]:
    status: dict[str, Any] = json.loads(
        kube.run("status", RELEASE, "-n", namespace, "-o", "json", chart=None)
    )
    return status


def _exists(kube: Kube, path: str) -> bool:
    return kube.cluster.find(path) is not None


def _apps(namespace: str, kind: str, name: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/{kind}/{name}"


def _core(namespace: str, kind: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/{kind}/{name}"


def _production_secret(kube: Kube, namespace: str) -> None:
    """The Secret production-values.yaml names (existingSecret), made outside the chart."""
    keys = yaml.safe_load(PRODUCTION.read_text())["secrets"]["existingSecretKeys"]
    kube.cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "lfr-stream-credentials", "namespace": namespace},
            "stringData": {key: f"test-{key}" for key in keys.values()},
        }
    )


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name.removesuffix("-values.yaml"))
def test_every_scenario_passes_a_server_side_dry_run(kube: Kube, values: Path) -> None:
    namespace = kube.namespace("dry")
    out = kube.run(
        "install", RELEASE, "-n", namespace, "-f", str(values), "--dry-run=server", "-o", "json"
    )
    release = json.loads(out)
    # helm validated the release's objects against the server's OpenAPI; now every
    # object, the hooks too, goes through the server's validation and admission
    objects = [o for o in yaml.safe_load_all(release["manifest"]) if o]
    for hook in release.get("hooks") or []:
        objects += [o for o in yaml.safe_load_all(hook["manifest"]) if o]
    assert len(objects) > 10
    # Pods are admitted only once their ServiceAccount exists, which in a real
    # install it does (created first); a dry run persists nothing, so make them.
    for obj in objects:
        obj["metadata"].setdefault("namespace", namespace)
        if obj["kind"] == "ServiceAccount":
            kube.cluster.apply(obj)
    for obj in objects:
        try:
            kube.cluster.apply(obj, dry_run=True)
        except Exception as exc:
            raise AssertionError(f"{obj['kind']}/{obj['metadata']['name']}: {exc}") from exc
    # nothing else was created
    assert kube.cluster.get(f"/apis/apps/v1/namespaces/{namespace}/deployments")["items"] == []


def test_install_runs_the_hooks_in_order_then_creates_the_release(kube: Kube) -> None:
    namespace = kube.namespace("install")
    out = kube.run("install", RELEASE, "-n", namespace, "-f", str(MINIMAL), "--timeout", TIMEOUT)
    # the NOTES name the consumer group and how to check the release
    assert f"consumer group {FULLNAME}" in out
    assert f"helm test {RELEASE} -n {namespace}" in out
    assert _status(kube, namespace)["info"]["status"] == "deployed"
    jobs = [name for ns, name in kube.jobs.completed if ns == namespace]
    assert jobs == [f"{FULLNAME}-topics", f"{FULLNAME}-migrate"]
    # succeeded jobs are deleted; their settings copies and ServiceAccount stay for a retry
    assert kube.cluster.get(f"/apis/batch/v1/namespaces/{namespace}/jobs")["items"] == []
    for kind, name in [
        ("configmaps", f"{FULLNAME}-hook-config"),
        ("serviceaccounts", f"{FULLNAME}-hooks"),
        ("configmaps", f"{FULLNAME}-config"),
        ("secrets", f"{FULLNAME}-secrets"),
        ("serviceaccounts", FULLNAME),
        ("services", f"{FULLNAME}-worker"),
        ("services", f"{FULLNAME}-sink"),
        ("services", f"{FULLNAME}-audit"),
    ]:
        assert _exists(kube, _core(namespace, kind, name)), (kind, name)
    worker = kube.cluster.get(_apps(namespace, "deployments", f"{FULLNAME}-worker"))
    assert worker["spec"]["replicas"] == 1
    # the consumer group is the release's own
    config = kube.cluster.get(_core(namespace, "configmaps", f"{FULLNAME}-config"))
    assert config["data"]["LFR_APP_ID"] == FULLNAME
    assert _exists(kube, _apps(namespace, "deployments", f"{FULLNAME}-sink"))
    # the retention audit, one replica, the source of LfrRetentionBreached
    audit = kube.cluster.get(_apps(namespace, "deployments", f"{FULLNAME}-audit"))
    assert audit["spec"]["replicas"] == 1


def test_upgrade_to_production_then_roll_back(kube: Kube) -> None:
    namespace = kube.namespace("upgrade")
    _production_secret(kube, namespace)
    kube.run("install", RELEASE, "-n", namespace, "-f", str(MINIMAL), "--timeout", TIMEOUT)
    kube.run(
        "upgrade", RELEASE, "-n", namespace, "-f", str(PRODUCTION), "--timeout", TIMEOUT
    )  # fmt: skip
    assert _status(kube, namespace)["version"] == 2
    # persistence turns the worker into a StatefulSet with a claim per pod
    assert not _exists(kube, _apps(namespace, "deployments", f"{FULLNAME}-worker"))
    worker = kube.cluster.get(_apps(namespace, "statefulsets", f"{FULLNAME}-worker"))
    assert worker["spec"]["replicas"] == 2  # KEDA's minReplicaCount
    env = {e["name"]: e for e in worker["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["LFR_WORKER_GROUP_INSTANCE_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.name"
    )
    assert worker["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "state"
    scaled = kube.cluster.get(
        f"/apis/keda.sh/v1alpha1/namespaces/{namespace}/scaledobjects/{FULLNAME}-worker"
    )
    assert scaled["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    for path in [
        f"/apis/keda.sh/v1alpha1/namespaces/{namespace}/triggerauthentications/{FULLNAME}-worker-kafka",
        f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/{FULLNAME}",
        f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/{FULLNAME}-hooks",
        f"/apis/monitoring.coreos.com/v1/namespaces/{namespace}/servicemonitors/{FULLNAME}",
        f"/apis/monitoring.coreos.com/v1/namespaces/{namespace}/prometheusrules/{FULLNAME}",
        f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets/{FULLNAME}-sink",
    ]:
        assert _exists(kube, path), path
    rule = kube.cluster.get(
        f"/apis/monitoring.coreos.com/v1/namespaces/{namespace}/prometheusrules/{FULLNAME}"
    )
    urls = [r["annotations"]["runbook_url"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert urls and all(u.startswith("https://") for u in urls)
    # the chart-made Secret went with existingSecret
    assert not _exists(kube, _core(namespace, "secrets", f"{FULLNAME}-secrets"))

    kube.run("rollback", RELEASE, "1", "-n", namespace, "--timeout", TIMEOUT, chart=None)
    status = _status(kube, namespace)
    assert (status["version"], status["info"]["status"]) == (3, "deployed")
    assert _exists(kube, _apps(namespace, "deployments", f"{FULLNAME}-worker"))
    assert not _exists(kube, _apps(namespace, "statefulsets", f"{FULLNAME}-worker"))
    assert not _exists(
        kube, f"/apis/keda.sh/v1alpha1/namespaces/{namespace}/scaledobjects/{FULLNAME}-worker"
    )
    assert _exists(kube, _core(namespace, "secrets", f"{FULLNAME}-secrets"))


def test_a_hook_that_outlives_the_timeout_leaves_nothing_broken(kube: Kube) -> None:
    namespace = kube.namespace("timeout")
    kube.jobs.stalled.add(namespace)
    # a ClickHouse admin password, so that the hooks also read a Secret copy
    admin = ("--set", "secrets.clickhousePassword=test-admin-password")
    with pytest.raises(HelmError, match="(?i)timed out|deadline|context"):
        kube.run(
            "install", RELEASE, "-n", namespace, "-f", str(MINIMAL), *admin, "--timeout", "5s"
        )  # fmt: skip
    assert _status(kube, namespace)["info"]["status"] == "failed"
    # The job still runs (Kubernetes retries its pod up to backoffLimit): everything
    # its pods read must still be there, or a retry fails with CreateContainerConfigError.
    job = kube.cluster.get(f"/apis/batch/v1/namespaces/{namespace}/jobs/{FULLNAME}-topics")
    pod = job["spec"]["template"]["spec"]
    assert _exists(kube, _core(namespace, "serviceaccounts", pod["serviceAccountName"]))
    for source in pod["containers"][0]["envFrom"]:
        if "configMapRef" in source:
            assert _exists(kube, _core(namespace, "configmaps", source["configMapRef"]["name"]))
    secrets = {
        var["valueFrom"]["secretKeyRef"]["name"]
        for var in pod["containers"][0].get("env", [])
        if "secretKeyRef" in var.get("valueFrom", {})
    }
    assert secrets == {f"{FULLNAME}-hook-secrets"}
    assert _exists(kube, _core(namespace, "secrets", f"{FULLNAME}-hook-secrets"))

    # Once the job has finished, a retry of the same install goes through.
    kube.jobs.stalled.discard(namespace)
    kube.run(
        "upgrade", "--install", RELEASE, "-n", namespace, "-f", str(MINIMAL), *admin,
        "--timeout", TIMEOUT,
    )  # fmt: skip
    status = _status(kube, namespace)
    assert (status["version"], status["info"]["status"]) == (2, "deployed")
    assert _exists(kube, _apps(namespace, "deployments", f"{FULLNAME}-worker"))


def test_switching_autoscaling_on_keeps_the_running_replicas(kube: Kube, tmp_path: Path) -> None:
    namespace = kube.namespace("scale")
    path = _apps(namespace, "deployments", f"{FULLNAME}-worker")
    fixed = kube.values_file(tmp_path, {"worker": {"replicas": 5}})
    kube.run("install", RELEASE, "-n", namespace, "-f", str(MINIMAL), "-f", str(fixed))
    assert kube.cluster.get(path)["spec"]["replicas"] == 5
    hpa = kube.values_file(
        tmp_path, {"worker": {"replicas": 5, "autoscaling": {"hpa": {"enabled": True}}}}
    )
    kube.run("upgrade", RELEASE, "-n", namespace, "-f", str(MINIMAL), "-f", str(hpa))
    assert kube.cluster.get(path)["spec"]["replicas"] == 5
    # the autoscaler's later decision survives the next upgrade too
    kube.cluster.request(
        "PATCH",
        path + "/scale",
        {"spec": {"replicas": 3}},
        content_type="application/merge-patch+json",
    )
    kube.run(
        "upgrade", RELEASE, "-n", namespace, "-f", str(MINIMAL), "-f", str(hpa),
        "--set", "logLevel=DEBUG",
    )  # fmt: skip
    assert kube.cluster.get(path)["spec"]["replicas"] == 3


def test_helm_test_runs_its_pod(kube: Kube) -> None:
    namespace = kube.namespace("helmtest")
    kube.run("install", RELEASE, "-n", namespace, "-f", str(MINIMAL), "--timeout", TIMEOUT)
    out = kube.run("test", RELEASE, "-n", namespace, "--timeout", TIMEOUT, chart=None)
    assert f"{FULLNAME}-test" in out and "Succeeded" in out
    pod = kube.cluster.get(_core(namespace, "pods", f"{FULLNAME}-test"))
    spec = pod["spec"]
    assert spec["containers"][0]["command"] == ["python", "/etc/lfr-test/check_release.py"]
    script = kube.cluster.get(_core(namespace, "configmaps", f"{FULLNAME}-test"))
    shipped = (CHART / "files" / "tests" / "check_release.py").read_text()
    assert script["data"]["check_release.py"] == shipped.rstrip("\n")
