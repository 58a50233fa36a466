"""What a local stack runs: plain or secured, one Kafka broker or several.

The default (plain, one broker) is the shared development stack. Any other
topology is a separate stack that can run beside it: unless LFR_STATE_DIR or
a port is set explicitly, it gets its own state folder under the default one
and its own ports (a fixed offset per topology), so ``lfr stack up --secure``
never touches the plain stack on 9092.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.settings import Settings
from streams.localstack.process import StackError

MAX_BROKERS = 5


@dataclass(frozen=True)
class Topology:
    """The shape of one local stack."""

    secure: bool = False
    brokers: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.brokers <= MAX_BROKERS:
            raise StackError(f"--brokers must be between 1 and {MAX_BROKERS}, not {self.brokers}")

    @property
    def is_default(self) -> bool:
        """Whether this is the shared plain single-broker stack."""
        return not self.secure and self.brokers == 1

    @property
    def name(self) -> str:
        """Folder name of a non-default stack: ``secure``, ``brokers-3``, ``secure-brokers-3``."""
        parts = (["secure"] if self.secure else []) + (
            [f"brokers-{self.brokers}"] if self.brokers > 1 else []
        )
        return "-".join(parts) or "plain"

    @property
    def port_offset(self) -> int:
        """Added to every default port: 100 secure, 200 several brokers, 300 both."""
        return (100 if self.secure else 0) + (200 if self.brokers > 1 else 0)

    @property
    def flags(self) -> str:
        """The ``lfr stack`` options that select this stack."""
        parts = (["--secure"] if self.secure else []) + (
            [f"--brokers {self.brokers}"] if self.brokers > 1 else []
        )
        return " ".join(parts)


def stack_settings(settings: Settings, topology: Topology) -> Settings:
    """``settings`` with this topology's own state dir and ports, unless set explicitly.

    With several brokers, node ``i`` listens on the first bootstrap port + 2i
    and its controller on LFR_KAFKA_CONTROLLER_PORT + 2i (or on the ports
    LFR_KAFKA_BOOTSTRAP lists, when it lists one per broker); the returned
    bootstrap names every broker, so clients reach the whole cluster.
    """
    explicit = settings.model_fields_set
    update: dict[str, object] = {}
    offset = topology.port_offset
    if not topology.is_default:
        if "state_dir" not in explicit:
            update["state_dir"] = settings.state_dir / topology.name
        for name in ("clickhouse_port", "clickhouse_http_port", "prometheus_port"):
            if name not in explicit:
                update[name] = getattr(settings, name) + offset
        if "kafka_controller_port" not in explicit:
            update["kafka_controller_port"] = settings.kafka_controller_port + offset
    servers = settings.bootstrap_servers
    if len(servers) != topology.brokers:
        first = settings.kafka_port + (0 if "kafka_bootstrap" in explicit else offset)
        ports = [first + 2 * i for i in range(topology.brokers)]
        update["kafka_bootstrap"] = ",".join(f"127.0.0.1:{p}" for p in ports)
    elif not topology.is_default and "kafka_bootstrap" not in explicit:
        update["kafka_bootstrap"] = f"127.0.0.1:{settings.kafka_port + offset}"
    if topology.brokers > 1 and "kafka_replication_factor" not in explicit:
        update["kafka_replication_factor"] = min(3, topology.brokers)
    return settings.model_copy(update=update) if update else settings


def broker_ports(settings: Settings) -> list[int]:
    """The client port of each broker, in node order."""
    return [int(s.rpartition(":")[2]) for s in settings.bootstrap_servers]


def controller_ports(settings: Settings, brokers: int) -> list[int]:
    """The KRaft controller port of each node, in node order."""
    return [settings.kafka_controller_port + 2 * i for i in range(brokers)]


def check_ports_distinct(settings: Settings, topology: Topology) -> None:
    """Raise StackError when two listeners of this stack would share a port."""
    ports = [
        *broker_ports(settings),
        *controller_ports(settings, topology.brokers),
        settings.clickhouse_port,
        settings.clickhouse_http_port,
        settings.prometheus_port,
    ]
    clashes = sorted({p for p in ports if ports.count(p) > 1})
    if clashes:
        raise StackError(
            f"the stack's ports clash ({', '.join(map(str, clashes))}): set LFR_KAFKA_BOOTSTRAP, "
            "LFR_KAFKA_CONTROLLER_PORT and the ClickHouse/Prometheus ports apart"
        )


def shared_lib_dir(settings: Settings, topology: Topology) -> Path:
    """Kafka's jar cache: one per machine state dir, shared by every topology."""
    state = settings.state_dir.resolve()
    if not topology.is_default and state.name == topology.name:
        parent_cache = state.parent / "kafka-lib"
        if parent_cache.exists():
            return parent_cache
    return state / "kafka-lib"
