"""Rendering the chart with a real ``helm`` for the chart's tests.

The tests call helm themselves: most checks need renders with values of their
own (invalid values, autoscaling variants, sample dashboards), not only the
``ci/*-values.yaml`` scenarios. helm comes from ``$HELM``, else ``PATH``, else
the cache that ``bash .ci/helm.sh install`` builds into. Without helm the tests
skip locally and fail under CI (``CI`` set), where a skip would hide the chart.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helm.apiserver import (
    Cluster,
    JobCompleter,
    crds_dir,
    find_kube_apiserver,
    running_cluster,
)

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "lfr-stream"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
KUBE_VERSION = os.environ.get("KUBE_VERSION", "1.37.0")
RELEASE = "lfr"
NAMESPACE = "lfr"
HOOK = "helm.sh/hook"


def find_helm() -> str | None:
    """Path of the helm binary the tests use, or None."""
    if os.environ.get("HELM"):
        return os.environ["HELM"]
    on_path = shutil.which("helm")
    if on_path:
        return on_path
    tools = Path(
        os.environ.get("LFR_TOOLS_DIR")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lfr-stream/tools"
    )
    cached = sorted(tools.glob("helm-v3*/helm"))
    return str(cached[-1]) if cached else None


@dataclass
class Rendered:
    """The objects of one ``helm template`` run."""

    objects: list[dict[str, Any]]
    text: str = field(repr=False)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name_suffix: str = "") -> dict[str, Any]:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"].endswith(name_suffix)]
        assert len(found) == 1, f"expected one {kind} *{name_suffix}, got {len(found)}"
        return found[0]

    def find(self, kind: str, name_suffix: str = "") -> dict[str, Any] | None:
        found = [o for o in self.of_kind(kind) if o["metadata"]["name"].endswith(name_suffix)]
        return found[0] if found else None

    def workloads(self) -> list[dict[str, Any]]:
        """Every object with a pod template: Deployments, StatefulSets and Jobs."""
        kinds = {"Deployment", "StatefulSet", "Job"}
        return [o for o in self.objects if o["kind"] in kinds]


class HelmError(Exception):
    """helm exited non-zero; the message is its stderr."""


@dataclass
class Helm:
    """A helm binary bound to the chart."""

    binary: str

    def run(self, *args: str, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.binary, *args, str(chart)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if proc.returncode != 0:
            raise HelmError(proc.stderr.strip() or proc.stdout.strip())
        return proc

    def template(
        self,
        *values_files: Path,
        values: dict[str, Any] | None = None,
        chart: Path = CHART,
        tmp_dir: Path | None = None,
    ) -> Rendered:
        """``helm template`` with the given values files, then ``values`` on top."""
        args = ["template", RELEASE, "--namespace", NAMESPACE, "--kube-version", KUBE_VERSION]
        for path in values_files:
            args += ["-f", str(path)]
        if values is not None:
            assert tmp_dir is not None, "inline values need a tmp_dir"
            extra = tmp_dir / f"extra-{len(list(tmp_dir.glob('extra-*')))}.yaml"
            extra.write_text(yaml.safe_dump(values))
            args += ["-f", str(extra)]
        text = self.run(*args, chart=chart).stdout
        objects = [doc for doc in yaml.safe_load_all(text) if doc]
        return Rendered(objects=objects, text=text)


@pytest.fixture(scope="session")
def helm() -> Helm:
    """The helm binary; skips (fails under CI) when there is none."""
    binary = find_helm()
    if binary is None:
        message = "helm not found: run `bash .ci/helm.sh` (or set HELM)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return Helm(binary)


@pytest.fixture(scope="session")
def scenarios(helm: Helm) -> dict[str, Rendered]:
    """Each ``ci/*-values.yaml`` scenario, rendered once per session."""
    return {path.name.removesuffix("-values.yaml"): helm.template(path) for path in CI_VALUES}


@pytest.fixture
def render(helm: Helm, tmp_path: Path) -> Callable[..., Rendered]:
    """Render with the minimal scenario plus inline values."""

    def _render(values: dict[str, Any], *, base: str = "minimal", chart: Path = CHART) -> Rendered:
        return helm.template(
            CHART / "ci" / f"{base}-values.yaml", values=values, chart=chart, tmp_dir=tmp_path
        )

    return _render


@pytest.fixture
def chart_copy(tmp_path: Path) -> Iterator[Path]:
    """A copy of the chart that a test may add files to."""
    copy = tmp_path / "chart" / "lfr-stream"
    shutil.copytree(CHART, copy)
    yield copy


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    """The pod spec of a Deployment, StatefulSet, Job or Pod."""
    spec: dict[str, Any] = obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]
    return spec


def is_hook(obj: dict[str, Any]) -> bool:
    return HOOK in (obj["metadata"].get("annotations") or {})


def container_env(rendered: Rendered, obj: dict[str, Any]) -> dict[str, str]:
    """The environment of a workload's first container, envFrom resolved.

    ConfigMap and Secret values come from the rendered objects; a reference to
    one the chart does not render (existingSecret) resolves to ``<ref name/key>``.
    """
    container = pod_spec(obj)["containers"][0]
    configmaps = {o["metadata"]["name"]: o.get("data") or {} for o in rendered.of_kind("ConfigMap")}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            name = source["configMapRef"]["name"]
            if name in configmaps:
                env.update(configmaps[name])
            else:
                assert source["configMapRef"].get("optional"), f"unknown ConfigMap {name}"
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
        elif "secretKeyRef" in var.get("valueFrom", {}):
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = f"<secret {ref['name']}/{ref['key']}>"
        else:
            env[var["name"]] = "<valueFrom>"
    return env


# A real API server ------------------------------------------------------


@dataclass
class Kube:
    """The test cluster, helm bound to it, and the stand-in Job controller."""

    cluster: Cluster
    helm: Helm
    jobs: JobCompleter
    _namespaces: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def namespace(self, prefix: str = "lfr", labels: dict[str, str] | None = None) -> str:
        """A fresh namespace with the ``default`` ServiceAccount a controller would add."""
        name = f"{prefix}-{next(self._namespaces)}"
        self.cluster.create_namespace(name, labels)
        self.cluster.request(
            "POST",
            f"/api/v1/namespaces/{name}/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}},
        )
        self.jobs.namespaces.add(name)
        return name

    def run(self, *args: str, chart: Path | None = CHART, timeout: float = 300) -> str:
        """``helm ARGS [CHART]`` against the cluster; stdout, or HelmError."""
        command = [self.helm.binary, *args, "--kubeconfig", str(self.cluster.kubeconfig)]
        if chart is not None:
            command.append(str(chart))
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise HelmError(proc.stderr.strip() or proc.stdout.strip())
        return proc.stdout

    def values_file(self, tmp_dir: Path, values: dict[str, Any]) -> Path:
        path = tmp_dir / f"values-{len(list(tmp_dir.glob('values-*')))}.yaml"
        path.write_text(yaml.safe_dump(values))
        return path


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """etcd + kube-apiserver on free 127.0.0.1 ports, with the shared CRDs applied.

    Skips locally when either binary is missing; fails under CI (``CI`` set),
    where a skip would hide the install tests.
    """
    etcd = shutil.which("etcd")
    apiserver = find_kube_apiserver()
    if etcd is None or apiserver is None:
        message = (
            "a real API server needs etcd (`LFR_PREREQS_EXTRA=kube bash deploy/local/"
            "prerequisites.sh`) and kube-apiserver (`bash .ci/kube-apiserver.sh install`)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    crds = sorted(crds_dir().glob("*.yaml"))
    if not crds:
        message = f"no CRDs in {crds_dir()} (set LFR_SHARED_DIR)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with running_cluster(tmp_path_factory.mktemp("kube"), etcd, apiserver) as running:
        names = []
        for path in crds:
            running.apply_manifest(path.read_text())
            names += [d["metadata"]["name"] for d in yaml.safe_load_all(path.read_text()) if d]
        running.wait_established(names)
        yield running


@pytest.fixture(scope="session")
def kube(cluster: Cluster, helm: Helm) -> Iterator[Kube]:
    with JobCompleter(cluster) as jobs:
        yield Kube(cluster=cluster, helm=helm, jobs=jobs)
        assert jobs.errors == [], jobs.errors
