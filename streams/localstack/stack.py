"""The local stack as a whole: start in order, stop in reverse, report status.

Every function takes the settings of the stack it acts on: the shared plain
stack by default, or a secured / several-broker one from
:func:`streams.localstack.topology.stack_settings`.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor

from common.settings import Settings
from streams.localstack.clickhouse import ClickHouseService
from streams.localstack.kafka import KafkaService
from streams.localstack.process import StackError
from streams.localstack.prometheus import PrometheusService
from streams.localstack.security import StackSecurity, create_application_acls, write_env_file
from streams.localstack.service import LocalService, ServiceStatus
from streams.localstack.topology import Topology, check_ports_distinct

log = logging.getLogger(__name__)

PLAIN = Topology()


def security_of(
    settings: Settings, topology: Topology, *, create: bool = True
) -> StackSecurity | None:
    """The secured stack's CA, certificates and credentials (created on first use).

    Without ``create`` (status, down) nothing is written: a secured stack
    that never started has no secrets yet, and no process to probe.
    """
    if not topology.secure:
        return None
    state = settings.state_dir.resolve()
    if not create and not (state / "credentials.json").is_file():
        return None
    return StackSecurity.ensure(state)


def services(
    settings: Settings, topology: Topology = PLAIN, *, create: bool = True
) -> list[LocalService]:
    """The services of the local stack in start order."""
    security = security_of(settings, topology, create=create)
    kafka: list[LocalService] = [
        KafkaService(settings, topology, node, security) for node in range(topology.brokers)
    ]
    return [*kafka, ClickHouseService(settings, security), PrometheusService(settings)]


def docker_answers() -> bool:
    """Whether a Docker engine answers a ping (the client alone is not enough)."""
    try:
        import docker  # testcontainers depends on it
    except ImportError:
        return False
    try:
        return bool(docker.from_env(timeout=2).ping())
    except Exception:  # noqa: BLE001 - any failure means "no engine here"
        return False


def backend(settings: Settings, topology: Topology = PLAIN) -> str:
    """``local`` or ``docker``: LFR_STACK, else Docker where an engine answers."""
    if not topology.is_default:
        return "local"  # the secured and several-broker stacks are local processes only
    if settings.stack != "auto":
        return settings.stack
    return "docker" if docker_answers() else "local"


def _selected(name: str, names: list[str] | None) -> bool:
    # `--only kafka` selects every Kafka node of a several-broker stack
    return not names or name in names or name.partition("-")[0] in names


def up(settings: Settings, names: list[str] | None = None, topology: Topology = PLAIN) -> list[str]:
    """Start the stack (or the named services); idempotent. Returns one line per service.

    Every service is launched first and then awaited, so the nodes of a
    several-broker cluster can form their quorum. When one fails, the
    services this call started are stopped again and the error is raised.
    """
    if backend(settings, topology) == "docker":
        from streams.localstack.docker import DockerStack

        return DockerStack(settings).up()
    check_ports_distinct(settings, topology)
    _claim_state_dir(settings, topology)
    chosen = [s for s in services(settings, topology) if _selected(s.name, names)]
    began = time.monotonic()
    launched: list[tuple[LocalService, int | None]] = []
    try:
        for service in chosen:
            launched.append((service, service.launch()))
        lines = [service.await_ready(pid, began) for service, pid in launched]
        security = security_of(settings, topology)
        if security is not None and any(isinstance(s, KafkaService) for s in chosen):
            count = create_application_acls(settings, security)
            lines.append(f"kafka: {count} ACLs allow user `lfr` the pipeline's topics and groups")
    except BaseException as exc:
        # a failed `up` leaves nothing of its own running
        stopped = []
        for service, pid in reversed(launched):
            if pid is not None:
                service.kill(pid)
                stopped.append(f"{service.name}: stopped (pid {pid})")
        if isinstance(exc, StackError) and stopped:
            undone = ", ".join(stopped)
            raise StackError(f"{exc}; stopped what this call started ({undone})") from exc
        raise
    if not topology.is_default:
        env_file = settings.state_dir.resolve() / "client.env"
        write_env_file(env_file, client_settings_environment(settings, topology))
        lines.append(f"client settings: set -a; . {env_file}; set +a")
    return lines


def _claim_state_dir(settings: Settings, topology: Topology) -> None:
    """Record which topology owns the state dir; refuse to mix two in one folder."""
    state = settings.state_dir.resolve()
    marker = state / "topology"
    if marker.exists():
        owner = marker.read_text().strip()
        if owner != topology.name:
            raise StackError(
                f"{state} holds a {owner} stack, not a {topology.name} one: stop and wipe it "
                "with `lfr stack down --purge` (and its flags) or use another LFR_STATE_DIR"
            )
        return
    state.mkdir(parents=True, exist_ok=True)
    marker.write_text(topology.name + "\n")


def down(settings: Settings, *, purge: bool = False, topology: Topology = PLAIN) -> list[str]:
    """Stop every service (reverse order); with ``purge`` also delete their data."""
    if backend(settings, topology) == "docker":
        from streams.localstack.docker import DockerStack

        return DockerStack(settings).down()
    lines = []
    errors: list[str] = []

    def stop(service: LocalService) -> str | None:
        try:
            lines.append(service.stop())
        except StackError as exc:
            errors.append(str(exc))
        return None

    every = services(settings, topology, create=False)
    for service in reversed([s for s in every if not isinstance(s, KafkaService)]):
        stop(service)
    # the nodes of a cluster stop together: the last one alone would wait for a quorum
    with ThreadPoolExecutor(max_workers=topology.brokers) as pool:
        list(pool.map(stop, [s for s in every if isinstance(s, KafkaService)]))
    if purge:
        for service in every:
            shutil.rmtree(service.home, ignore_errors=True)
        state = settings.state_dir.resolve()
        for name in ("kafka-cluster-id", "client.env", "credentials.json", "tls", "topology"):
            path = state / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        lines.append(f"purged service data under {state}")
    if errors:
        raise StackError("; ".join(errors))
    return lines


def status(settings: Settings, topology: Topology = PLAIN) -> list[ServiceStatus]:
    """The status of every local service."""
    if backend(settings, topology) == "docker":
        from streams.localstack.docker import DockerStack

        return DockerStack(settings).status()
    return [service.status() for service in services(settings, topology, create=False)]


def client_settings_environment(settings: Settings, topology: Topology) -> dict[str, str]:
    """Every LFR_* variable a pipeline process needs to use this stack."""
    env = {
        "LFR_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LFR_KAFKA_REPLICATION_FACTOR": str(settings.kafka_replication_factor),
        "LFR_CLICKHOUSE_HOST": settings.clickhouse_host,
        "LFR_CLICKHOUSE_PORT": str(settings.clickhouse_port),
        "LFR_CLICKHOUSE_HTTP_PORT": str(settings.clickhouse_http_port),
    }
    security = security_of(settings, topology, create=False)
    if security is None:
        # a development stack: the worker may use the known development key
        env["LFR_ALLOW_DEV_PSEUDONYM_KEY"] = "true"
    else:
        env.update(security.client_environment())
    return env


def client_environment(settings: Settings) -> dict[str, str]:
    """LFR_* variables that point clients at this stack (for tests and the demo)."""
    env = {
        "LFR_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LFR_CLICKHOUSE_HOST": settings.clickhouse_host,
        "LFR_CLICKHOUSE_PORT": str(settings.clickhouse_port),
        "LFR_CLICKHOUSE_HTTP_PORT": str(settings.clickhouse_http_port),
    }
    return {k: v for k, v in env.items() if os.environ.get(k) != v}
