"""The local stack as a whole: start in order, stop in reverse, report status."""

from __future__ import annotations

import logging
import os
import shutil

from streams.localstack.clickhouse import ClickHouseService
from streams.localstack.kafka import KafkaService
from streams.localstack.process import StackError
from streams.localstack.prometheus import PrometheusService
from streams.localstack.service import LocalService, ServiceStatus
from streams.settings import Settings

log = logging.getLogger(__name__)


def services(settings: Settings) -> list[LocalService]:
    """The services of the local stack in start order."""
    return [KafkaService(settings), ClickHouseService(settings), PrometheusService(settings)]


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


def backend(settings: Settings) -> str:
    """``local`` or ``docker``: LFR_STACK, else Docker where an engine answers."""
    if settings.stack != "auto":
        return settings.stack
    return "docker" if docker_answers() else "local"


def up(settings: Settings, names: list[str] | None = None) -> list[str]:
    """Start the stack (or the named services); idempotent. Returns one line per service."""
    if backend(settings) == "docker":
        from streams.localstack.docker import DockerStack

        return DockerStack(settings).up()
    lines: list[str] = []
    started: list[LocalService] = []
    for service in services(settings):
        if names and service.name not in names:
            continue
        was_running = service.pid_file.read() is not None
        try:
            lines.append(service.start())
        except StackError as exc:
            # a half-started stack holds ports and files that block the next try
            stopped = [s.stop() for s in reversed(started)]
            undone = f"; stopped what this call started ({', '.join(stopped)})" if stopped else ""
            raise StackError(f"{exc}{undone}") from exc
        if not was_running:
            started.append(service)
    return lines


def down(settings: Settings, *, purge: bool = False) -> list[str]:
    """Stop every service (reverse order); with ``purge`` also delete their data."""
    if backend(settings) == "docker":
        from streams.localstack.docker import DockerStack

        return DockerStack(settings).down()
    lines = []
    errors: list[str] = []
    for service in reversed(services(settings)):
        try:
            lines.append(service.stop())
        except StackError as exc:
            errors.append(str(exc))
    if purge:
        for service in services(settings):
            shutil.rmtree(service.home, ignore_errors=True)
        lines.append(f"purged service data under {settings.state_dir.resolve()}")
    if errors:
        raise StackError("; ".join(errors))
    return lines


def status(settings: Settings) -> list[ServiceStatus]:
    """The status of every local service."""
    if backend(settings) == "docker":
        from streams.localstack.docker import DockerStack

        return DockerStack(settings).status()
    return [service.status() for service in services(settings)]


def client_environment(settings: Settings) -> dict[str, str]:
    """LFR_* variables that point clients at this stack (for tests and the demo)."""
    env = {
        "LFR_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "LFR_CLICKHOUSE_HOST": settings.clickhouse_host,
        "LFR_CLICKHOUSE_PORT": str(settings.clickhouse_port),
        "LFR_CLICKHOUSE_HTTP_PORT": str(settings.clickhouse_http_port),
    }
    return {k: v for k, v in env.items() if os.environ.get(k) != v}
