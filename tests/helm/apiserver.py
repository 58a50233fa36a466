"""A real Kubernetes API server on 127.0.0.1 for the chart's install tests.

etcd (Debian's ``etcd-server``) and ``kube-apiserver`` (built by
``bash .ci/kube-apiserver.sh install``) on free ports, with token
authentication, the Node and RBAC authorizers and service-account signing
keys, like a cluster's control plane. No controller-manager, scheduler or
kubelet runs: objects are stored, validated, defaulted and admitted, but no
pod ever starts. :class:`JobCompleter` stands in for the Job controller so
that helm's hooks, which wait for their Jobs, can proceed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBE_APISERVER_VERSION = os.environ.get("KUBE_APISERVER_VERSION", "v1.34.4")


class ApiError(Exception):
    """The API server answered with an error status."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status


def tools_dir() -> Path:
    """Where .ci/helm.sh and .ci/kube-apiserver.sh cache their builds."""
    if os.environ.get("LFR_TOOLS_DIR"):
        return Path(os.environ["LFR_TOOLS_DIR"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "lfr-stream" / "tools"


def find_kube_apiserver() -> str | None:
    """Path of kube-apiserver: ``$KUBE_APISERVER``, ``PATH``, then the build cache."""
    if os.environ.get("KUBE_APISERVER"):
        return os.environ["KUBE_APISERVER"]
    cached = tools_dir() / f"kube-apiserver-{KUBE_APISERVER_VERSION}" / "kube-apiserver"
    if cached.is_file():
        return str(cached)
    return shutil.which("kube-apiserver")


def crds_dir() -> Path:
    """The shared CRDs (ServiceMonitor, PodMonitor, PrometheusRule, ScaledObject...)."""
    shared = Path(os.environ.get("LFR_SHARED_DIR") or "../shared")
    if not shared.is_absolute():
        shared = (ROOT / shared).resolve()
    return shared / "crds"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _write_pki(pki: Path) -> None:
    """A serving certificate for 127.0.0.1 and a service-account signing key pair."""
    pki.mkdir(parents=True)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-keyout", "serving.key", "-out", "serving.crt",
        "-subj", "/CN=kube-apiserver",
        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        cwd=pki,
    )  # fmt: skip


@dataclass
class Cluster:
    """A running API server: its URL, an admin token and a kubeconfig for helm."""

    url: str
    token: str
    ca_file: Path
    kubeconfig: Path
    log_file: Path
    _ssl: ssl.SSLContext = field(init=False, repr=False)
    _discovery: dict[str, dict[str, tuple[str, bool]]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._ssl = ssl.create_default_context(cafile=str(self.ca_file))
        self._discovery = {}

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30,
    ) -> Any:
        """One API call; the decoded JSON answer."""
        data = None
        if body is not None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        req = urllib.request.Request(  # noqa: S310 - https to 127.0.0.1 only
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": content_type},
        )
        try:
            with urllib.request.urlopen(req, context=self._ssl, timeout=timeout) as resp:  # noqa: S310
                text = resp.read().decode()
        except urllib.error.HTTPError as exc:
            raise ApiError(exc.code, exc.read().decode()) from exc
        return json.loads(text) if text else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def find(self, path: str) -> Any | None:
        """The object at ``path``, or None when it does not exist."""
        try:
            return self.get(path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def resource_path(self, obj: dict[str, Any]) -> str:
        """REST path of a named object, its resource found through API discovery."""
        group_version = obj["apiVersion"]
        if group_version not in self._discovery:
            base = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
            resources = self.get(base)["resources"]
            self._discovery[group_version] = {
                r["kind"]: (f"{base}/{r['name']}", r["namespaced"])
                for r in resources
                if "/" not in r["name"]
            }
        collection, namespaced = self._discovery[group_version][obj["kind"]]
        name = obj["metadata"]["name"]
        if not namespaced:
            return f"{collection}/{name}"
        base, _, plural = collection.rpartition("/")
        namespace = obj["metadata"].get("namespace", "default")
        return f"{base}/namespaces/{namespace}/{plural}/{name}"

    def apply(self, obj: dict[str, Any], *, dry_run: bool = False) -> Any:
        """Server-side apply of one object; with ``dry_run`` it is validated and admitted only."""
        query = "?fieldManager=lfr-tests&force=true" + ("&dryRun=All" if dry_run else "")
        return self.request(
            "PATCH",
            self.resource_path(obj) + query,
            json.dumps(obj),
            content_type="application/apply-patch+yaml",
        )

    def apply_manifest(self, text: str) -> None:
        """Server-side apply of every object of a YAML stream (CRDs, namespaces...)."""
        for obj in yaml.safe_load_all(text):
            if obj:
                self.apply(obj)

    def create_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": labels or {}},
        }
        self.request("POST", "/api/v1/namespaces", body)

    def wait_established(self, crd_names: list[str], timeout: float = 60) -> None:
        """Wait until the CRDs serve their kinds."""
        deadline = time.monotonic() + timeout
        pending = set(crd_names)
        while pending:
            for name in sorted(pending):
                crd = self.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}")
                conditions = crd.get("status", {}).get("conditions") or []
                if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                    pending.discard(name)
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"CRDs not established: {sorted(pending)}")
            if pending:
                time.sleep(0.2)


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{url}: process exited {proc.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - 127.0.0.1 only
                if resp.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer in {timeout} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextlib.contextmanager
def running_cluster(workdir: Path, etcd: str, apiserver: str) -> Iterator[Cluster]:
    """etcd and kube-apiserver in ``workdir``, stopped (and their data kept) on exit."""
    pki = workdir / "pki"
    _write_pki(pki)
    token = os.urandom(16).hex()
    # token,user,uid,"groups": the admin is in system:masters, as kubeadm's admin.conf is
    (workdir / "tokens.csv").write_text(f'{token},lfr-admin,lfr-admin,"system:masters"\n')
    etcd_client, etcd_peer = free_port(), free_port()
    etcd_url = f"http://127.0.0.1:{etcd_client}"
    etcd_log = workdir / "etcd.log"
    apiserver_log = workdir / "kube-apiserver.log"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with etcd_log.open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [
                        etcd,
                        "--name", "lfr-tests",
                        "--data-dir", str(workdir / "etcd"),
                        "--listen-client-urls", etcd_url,
                        "--advertise-client-urls", etcd_url,
                        "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
                        "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
                        "--initial-cluster", f"lfr-tests=http://127.0.0.1:{etcd_peer}",
                        "--unsafe-no-fsync",
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )  # fmt: skip
        _wait_http(f"{etcd_url}/health", procs[0], etcd_log, timeout=60)
        port = free_port()
        with apiserver_log.open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [
                        apiserver,
                        "--etcd-servers", etcd_url,
                        "--bind-address", "127.0.0.1",
                        "--advertise-address", "127.0.0.1",
                        "--secure-port", str(port),
                        "--cert-dir", str(pki),
                        "--tls-cert-file", str(pki / "serving.crt"),
                        "--tls-private-key-file", str(pki / "serving.key"),
                        "--token-auth-file", str(workdir / "tokens.csv"),
                        "--anonymous-auth=false",
                        "--authorization-mode", "Node,RBAC",
                        "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
                        "--service-account-key-file", str(pki / "sa.pub"),
                        "--service-account-signing-key-file", str(pki / "sa.key"),
                        "--service-cluster-ip-range", "10.96.0.0/16",
                        "--profiling=false",
                        "--v", "1",
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )  # fmt: skip
        url = f"https://127.0.0.1:{port}"
        cafile = pki / "serving.crt"
        context = ssl.create_default_context(cafile=str(cafile))
        req = urllib.request.Request(  # noqa: S310 - https to 127.0.0.1 only
            f"{url}/readyz", headers={"Authorization": f"Bearer {token}"}
        )
        _wait_http_request(req, procs[1], apiserver_log, context, timeout=180)
        kubeconfig = workdir / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "lfr-tests",
                            "cluster": {"server": url, "certificate-authority": str(cafile)},
                        }
                    ],
                    "users": [{"name": "lfr-admin", "user": {"token": token}}],
                    "contexts": [
                        {
                            "name": "lfr-tests",
                            "context": {"cluster": "lfr-tests", "user": "lfr-admin"},
                        }
                    ],
                    "current-context": "lfr-tests",
                }
            )
        )
        kubeconfig.chmod(0o600)
        yield Cluster(
            url=url, token=token, ca_file=cafile, kubeconfig=kubeconfig, log_file=apiserver_log
        )
    finally:
        for proc in reversed(procs):
            _stop(proc)


def _wait_http_request(
    req: urllib.request.Request,
    proc: subprocess.Popen[bytes],
    log: Path,
    context: ssl.SSLContext,
    timeout: float,
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"kube-apiserver exited {proc.returncode}:\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(req, timeout=5, context=context) as resp:  # noqa: S310
                if resp.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"kube-apiserver not ready in {timeout} s:\n{log.read_text()[-3000:]}"
            )
        time.sleep(0.5)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class JobCompleter:
    """Stands in for the Job controller and the kubelet: marks new Jobs complete.

    Without a controller-manager a Job never runs, and helm waits for its hook
    Jobs until ``--timeout``. Every Job in a namespace of ``namespaces`` gets
    the status the Job controller writes on success, and every ``helm test``
    pod the status a kubelet reports when it exits 0; namespaces in ``stalled``
    are left alone, so a test can make a hook time out.
    """

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.namespaces: set[str] = set()
        self.stalled: set[str] = set()
        self.completed: list[tuple[str, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-completer", daemon=True)
        self.errors: list[str] = []

    def __enter__(self) -> JobCompleter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            for namespace in sorted(self.namespaces - self.stalled):
                try:
                    self._complete_jobs(namespace)
                    self._complete_test_pods(namespace)
                except ApiError as exc:
                    # deleted (helm removes succeeded hooks) or changed since listed:
                    # the next round sees the current state
                    if exc.status not in (404, 409):
                        self.errors.append(f"{namespace}: {exc}")
                except OSError as exc:
                    self.errors.append(f"{namespace}: {exc}")
            self._stop.wait(0.2)

    def _complete_test_pods(self, namespace: str) -> None:
        pods = self.cluster.get(f"/api/v1/namespaces/{namespace}/pods")["items"]
        for pod in pods:
            annotations = pod["metadata"].get("annotations") or {}
            phase = (pod.get("status") or {}).get("phase")
            if annotations.get("helm.sh/hook") == "test" and phase not in ("Succeeded", "Failed"):
                self.succeed_pod(namespace, pod["metadata"]["name"])

    def succeed_pod(self, namespace: str, name: str) -> None:
        """Write the status of a pod whose containers all exited 0 (what a kubelet reports)."""
        path = f"/api/v1/namespaces/{namespace}/pods/{name}/status"
        pod = self.cluster.get(path)
        now = _now()
        pod["status"] = {
            "phase": "Succeeded",
            "startTime": now,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "PodCompleted",
                    "lastTransitionTime": now,
                }
            ],
            "containerStatuses": [
                {
                    "name": c["name"],
                    "image": c["image"],
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "started": False,
                    "state": {
                        "terminated": {
                            "exitCode": 0,
                            "reason": "Completed",
                            "startedAt": now,
                            "finishedAt": now,
                        }
                    },
                }
                for c in pod["spec"]["containers"]
            ],
        }
        self.cluster.request("PUT", path, pod)
        self.completed.append((namespace, name))

    def _complete_jobs(self, namespace: str) -> None:
        jobs = self.cluster.get(f"/apis/batch/v1/namespaces/{namespace}/jobs")["items"]
        for job in jobs:
            status = job.get("status") or {}
            conditions = status.get("conditions") or []
            if any(c["type"] in ("Complete", "Failed") for c in conditions):
                continue
            self.complete(namespace, job["metadata"]["name"])

    def complete(self, namespace: str, name: str) -> None:
        """Write the status a finished Job has: started, succeeded once, Complete."""
        path = f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}/status"
        job = self.cluster.get(path)
        now = _now()
        job["status"] = {
            "startTime": job.get("status", {}).get("startTime") or now,
            "completionTime": now,
            "succeeded": 1,
            "active": 0,
            "ready": 0,
            "terminating": 0,
            "uncountedTerminatedPods": {},
            "conditions": [
                {
                    "type": "SuccessCriteriaMet",
                    "status": "True",
                    "reason": "CompletionsReached",
                    "message": "Reached expected number of succeeded pods",
                    "lastProbeTime": now,
                    "lastTransitionTime": now,
                },
                {
                    "type": "Complete",
                    "status": "True",
                    "reason": "CompletionsReached",
                    "message": "Reached expected number of succeeded pods",
                    "lastProbeTime": now,
                    "lastTransitionTime": now,
                },
            ],
        }
        self.cluster.request("PUT", path, job)
        self.completed.append((namespace, name))
