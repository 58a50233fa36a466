"""A private local stack (secured and/or several brokers) on free ports, beside the shared one.

Tests that stop or kill a broker, or need the secured listeners, start their
own stack here, never touching the shared stack on 9092.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.settings import Settings
from streams.localstack import stack
from streams.localstack.process import port_in_use
from streams.localstack.topology import Topology, stack_settings

# below the kernel's ephemeral range (32768-60999): a client connection's
# local port there would make these ports look taken
PORT_RANGE = (20000, 32000)


def free_port_block(count: int, step: int = 1) -> int:
    """A port p with p, p+step, ... p+(count-1)*step all free on 127.0.0.1."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(*PORT_RANGE)
        if not any(port_in_use(base + i * step) for i in range(count)):
            return base
    raise RuntimeError("no free block of ports found")


def link_jar_cache(state: Path) -> None:
    """Share the session's Kafka jar cache so Maven is not asked again."""
    for candidate in (Path(".lfr/kafka-lib"), Path("/work/main/.lfr/kafka-lib")):
        cache = candidate.resolve()
        if (cache / ".pom-sha256").exists():
            state.mkdir(parents=True, exist_ok=True)
            (state / "kafka-lib").symlink_to(cache)
            return


@dataclass(frozen=True)
class PrivateStack:
    """Where a private stack runs and the settings that reach it as the application."""

    topology: Topology
    stack_settings: Settings
    client_env: dict[str, str]

    def client_settings(self, **overrides: Any) -> Settings:
        """Settings of a pipeline process on this stack (client.env plus ``overrides``)."""
        values: dict[str, Any] = {
            key.removeprefix("LFR_").lower(): value for key, value in self.client_env.items()
        }
        values.update(overrides)
        return Settings(**values)


@contextmanager
def private_stack(
    state: Path, topology: Topology, services: tuple[str, ...] = ("kafka", "clickhouse")
) -> Iterator[PrivateStack]:
    """Start the stack under ``state`` on free ports; stop it (and its data) afterwards."""
    link_jar_cache(state)
    brokers = topology.brokers
    kafka = free_port_block(2 * brokers)
    clickhouse = free_port_block(2)
    base = Settings(
        state_dir=state,
        kafka_bootstrap=f"127.0.0.1:{kafka}",
        kafka_controller_port=kafka + 1,
        clickhouse_port=clickhouse,
        clickhouse_http_port=clickhouse + 1,
        prometheus_port=free_port_block(1),
    )
    settings = stack_settings(base, topology)
    try:
        stack.up(settings, list(services), topology)
        env = stack.client_settings_environment(settings, topology)
        yield PrivateStack(topology, settings, env)
    finally:
        stack.down(settings, topology=topology)
