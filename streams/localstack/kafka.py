"""A single-node Apache Kafka 4 broker in KRaft mode (combined broker + controller).

Its jars come from Maven Central through ``deploy/local/kafka/pom.xml`` into a
cached lib folder under the state dir; storage is formatted with Kafka's own
StorageTool; the broker runs as ``java -cp <lib>/* kafka.Kafka server.properties``.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import shutil
import subprocess  # noqa: S404 - runs Maven and Java, the stack's prerequisites
import uuid
from pathlib import Path

from common.settings import Settings
from streams.localstack.process import StackError
from streams.localstack.security import StackSecurity
from streams.localstack.service import DEPLOY_LOCAL, LocalService
from streams.localstack.topology import (
    Topology,
    broker_ports,
    controller_ports,
    shared_lib_dir,
)

log = logging.getLogger(__name__)

POM = DEPLOY_LOCAL / "kafka" / "pom.xml"
MIN_JAVA = 17

LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


def java_major_version(java: str) -> int:
    """The major version of ``java`` (``java -version`` prints to stderr)."""
    out = subprocess.run(  # noqa: S603
        [java, "-version"], capture_output=True, text=True, timeout=30, check=False
    ).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not match:
        raise StackError(f"cannot read the Java version from `{java} -version`: {out[:200]!r}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def random_cluster_id() -> str:
    """A Kafka cluster id: a random UUID in URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


class KafkaService(LocalService):
    """One local Kafka node (broker and KRaft controller in one process).

    A single node is the service ``kafka``; with several brokers node ``i``
    is ``kafka-<i+1>`` and every node votes in the controller quorum. On a
    secured stack clients reach the brokers on SASL_SSL with SCRAM-SHA-512;
    the controller listener takes SASL PLAIN from the admin user only.
    """

    start_timeout = 90.0

    def __init__(
        self,
        settings: Settings,
        topology: Topology | None = None,
        node: int = 0,
        security: StackSecurity | None = None,
    ) -> None:
        self.topology = topology or Topology()
        self.node = node
        self.name = "kafka" if self.topology.brokers == 1 else f"kafka-{node + 1}"
        self.security = security
        super().__init__(settings)

    @property
    def lib_dir(self) -> Path:
        """The cached folder of Kafka's jars (shared by every topology)."""
        return shared_lib_dir(self.settings, self.topology)

    @property
    def data_dir(self) -> Path:
        """Kafka's log.dirs (topic data and KRaft metadata)."""
        return self.home / "data"

    @property
    def port(self) -> int:
        """This node's client port."""
        return broker_ports(self.settings)[self.node]

    @property
    def controller_port(self) -> int:
        """This node's KRaft controller port."""
        return controller_ports(self.settings, self.topology.brokers)[self.node]

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port, self.controller_port)

    @property
    def endpoint(self) -> str:
        protocol = "SASL_SSL " if self.security else ""
        return f"{protocol}127.0.0.1:{self.port}"

    def check_prerequisites(self) -> None:
        java = shutil.which("java")
        if java is None:
            raise StackError(
                "Java not found: install Java 17 (apt-get install openjdk-17-jre-headless)"
            )
        if java_major_version(java) < MIN_JAVA:
            raise StackError(f"Kafka 4 needs Java {MIN_JAVA}+; `java` is older: install openjdk-17")
        if not self._jars_current() and shutil.which("mvn") is None:
            raise StackError(
                "Maven not found: install it (apt-get install maven) to fetch Kafka's jars"
            )

    def _pom_digest(self) -> str:
        return hashlib.sha256(POM.read_bytes()).hexdigest()

    def _jars_current(self) -> bool:
        stamp = self.lib_dir / ".pom-sha256"
        return stamp.exists() and stamp.read_text().strip() == self._pom_digest()

    def ensure_jars(self) -> None:
        """Copy Kafka's jars from Maven into the lib folder unless the pom is unchanged."""
        if self._jars_current():
            return
        log.info("fetching Kafka jars with Maven into %s", self.lib_dir)
        shutil.rmtree(self.lib_dir, ignore_errors=True)
        self.lib_dir.mkdir(parents=True)
        mvn = shutil.which("mvn") or "mvn"
        result = subprocess.run(  # noqa: S603 - fixed arguments
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={self.lib_dir}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if result.returncode != 0 or not list(self.lib_dir.glob("kafka_2.13-*.jar")):
            tail = (result.stdout + result.stderr).strip().splitlines()[-3:]
            raise StackError(f"Maven could not fetch Kafka's jars: {' | '.join(tail)}")
        (self.lib_dir / ".pom-sha256").write_text(self._pom_digest())

    def server_properties(self) -> str:
        """The node's configuration."""
        brokers = self.topology.brokers
        voters = ",".join(
            f"{i + 1}@127.0.0.1:{p}" for i, p in enumerate(controller_ports(self.settings, brokers))
        )
        # several brokers: internal topics replicated 3 ways, writes need 2 in sync
        replicas, min_isr = (min(3, brokers), min(2, brokers)) if brokers > 1 else (1, 1)
        lines = [
            "process.roles=broker,controller",
            f"node.id={self.node + 1}",
            f"controller.quorum.voters={voters}",
            *self._listener_lines(),
            "controller.listener.names=CONTROLLER",
            f"log.dirs={self.data_dir}",
            "num.partitions=1",
            f"default.replication.factor={replicas}",
            f"min.insync.replicas={min_isr}",
            f"offsets.topic.replication.factor={replicas}",
            "offsets.topic.num.partitions=5",
            f"transaction.state.log.replication.factor={replicas}",
            f"transaction.state.log.min.isr={min_isr}",
            "transaction.state.log.num.partitions=5",
            f"share.coordinator.state.topic.replication.factor={replicas}",
            f"share.coordinator.state.topic.min.isr={min_isr}",
            # tests join and leave groups constantly; do not wait for more members
            "group.initial.rebalance.delay.ms=0",
            # a secured cluster creates only what an authorised client asks for
            f"auto.create.topics.enable={'false' if self.security else 'true'}",
            "log.retention.check.interval.ms=60000",
            "",
        ]
        return "\n".join(lines)

    def _listener_lines(self) -> list[str]:
        port, ctl = self.port, self.controller_port
        if self.security is None:
            return [
                f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctl}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            ]
        return [
            f"listeners=SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctl}",
            f"advertised.listeners=SASL_SSL://127.0.0.1:{port}",
            "inter.broker.listener.name=SASL_SSL",
            "listener.security.protocol.map=SASL_SSL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT",
            *self.security.kafka_properties(self.home),
        ]

    def _cluster_id(self) -> str:
        if self.topology.brokers == 1:
            return random_cluster_id()
        # every node of a cluster is formatted with the same id
        path = self.state_dir / "kafka-cluster-id"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(random_cluster_id())
        return path.read_text().strip()

    def _format_storage(self, properties: Path) -> None:
        meta = self.data_dir / "meta.properties"
        if meta.exists():
            return
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise StackError(
                f"Kafka storage {self.data_dir} is half-formatted (no meta.properties); "
                f"wipe the local stack with `lfr stack down --purge {self.topology.flags}` "
                f"and run `lfr stack up {self.topology.flags}` again".replace("  ", " ")
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        scram = self.security.scram_arguments() if self.security else []
        result = subprocess.run(  # noqa: S603 - fixed arguments
            [
                shutil.which("java") or "java",
                "-cp",
                f"{self.lib_dir}/*",
                "kafka.tools.StorageTool",
                "format",
                # one argument with "=": an id may begin with "-" (1 in 64 of them), and
                # "-t ID" then reads as a missing value ("expected one argument")
                f"--cluster-id={self._cluster_id()}",
                "-c",
                str(properties),
                *scram,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise StackError(f"Kafka storage format failed: {result.stderr.strip()[-300:]}")

    def prepare(self) -> list[str]:
        self.ensure_jars()
        self.home.mkdir(parents=True, exist_ok=True)
        properties = self.home / "server.properties"
        # the secured node's properties hold its passwords: owner only
        properties.touch(mode=0o600)
        properties.write_text(self.server_properties())
        (self.home / "log4j2.properties").write_text(LOG4J2)
        self._format_storage(properties)
        return [
            shutil.which("java") or "java",
            "-Xms256m",
            "-Xmx768m" if self.topology.brokers == 1 else "-Xmx512m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp",
            f"{self.lib_dir}/*",
            "kafka.Kafka",
            str(properties),
        ]

    def client_config(self) -> dict[str, object]:
        """kafka-python security options of the probe (the admin user on a secured stack)."""
        if self.security is None:
            return {}
        config = self.security.admin_settings(self.settings).kafka_python_config()
        config.pop("bootstrap_servers", None)
        return config

    def ready(self) -> bool:
        brokers = cluster_brokers(f"127.0.0.1:{self.port}", config=self.client_config())
        return self.node + 1 in brokers


def broker_answers(
    bootstrap: str, timeout_s: float = 3.0, config: dict[str, object] | None = None
) -> bool:
    """Whether a Kafka broker at ``bootstrap`` answers a metadata request."""
    return bool(cluster_brokers(bootstrap, timeout_s, config))


def cluster_brokers(
    bootstrap: str, timeout_s: float = 3.0, config: dict[str, object] | None = None
) -> set[int]:
    """Node ids of the brokers the cluster at ``bootstrap`` reports (empty: no answer)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    # a refused connection is the expected answer while the broker starts
    kafka_log = logging.getLogger("kafka")
    level = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL)
    try:
        # the probe's own address and timeouts win over those of a client config
        options = {
            **(config or {}),
            "bootstrap_servers": bootstrap,
            "request_timeout_ms": int(timeout_s * 1000),
            "bootstrap_timeout_ms": int(timeout_s * 1000),
            "client_id": "lfr-stack-probe",
        }
        admin = KafkaAdminClient(**options)
    except (KafkaError, OSError, ValueError):
        return set()
    else:
        try:
            brokers = admin.describe_cluster().get("brokers") or []
            return {int(b["broker_id"]) for b in brokers}
        except (KafkaError, OSError):
            return set()
        finally:
            admin.close()
    finally:
        kafka_log.setLevel(level)
