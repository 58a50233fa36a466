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

from streams.localstack.process import StackError
from streams.localstack.service import DEPLOY_LOCAL, LocalService

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
    """The local Kafka broker."""

    name = "kafka"
    start_timeout = 90.0

    @property
    def lib_dir(self) -> Path:
        """The cached folder of Kafka's jars."""
        return self.state_dir / "kafka-lib"

    @property
    def data_dir(self) -> Path:
        """Kafka's log.dirs (topic data and KRaft metadata)."""
        return self.home / "data"

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.settings.kafka_port, self.settings.kafka_controller_port)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.settings.kafka_port}"

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
        """The broker's configuration."""
        port, ctl = self.settings.kafka_port, self.settings.kafka_controller_port
        return "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{ctl}",
                f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctl}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                f"log.dirs={self.data_dir}",
                "num.partitions=1",
                # one node: internal topics cannot be replicated
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=5",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "transaction.state.log.num.partitions=5",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                # tests join and leave groups constantly; do not wait for more members
                "group.initial.rebalance.delay.ms=0",
                "auto.create.topics.enable=true",
                "log.retention.check.interval.ms=60000",
                "",
            ]
        )

    def _format_storage(self, properties: Path) -> None:
        meta = self.data_dir / "meta.properties"
        if meta.exists():
            return
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise StackError(
                f"Kafka storage {self.data_dir} is half-formatted (no meta.properties); "
                "wipe the local stack with `lfr stack down --purge` and run `lfr stack up` again"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(  # noqa: S603 - fixed arguments
            [
                shutil.which("java") or "java",
                "-cp",
                f"{self.lib_dir}/*",
                "kafka.tools.StorageTool",
                "format",
                "-t",
                random_cluster_id(),
                "-c",
                str(properties),
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
        properties.write_text(self.server_properties())
        (self.home / "log4j2.properties").write_text(LOG4J2)
        self._format_storage(properties)
        return [
            shutil.which("java") or "java",
            "-Xms256m",
            "-Xmx768m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-cp",
            f"{self.lib_dir}/*",
            "kafka.Kafka",
            str(properties),
        ]

    def ready(self) -> bool:
        return broker_answers(self.endpoint)


def broker_answers(bootstrap: str, timeout_s: float = 3.0) -> bool:
    """Whether a Kafka broker at ``bootstrap`` answers a metadata request."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    # a refused connection is the expected answer while the broker starts
    kafka_log = logging.getLogger("kafka")
    level = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL)
    try:
        return _describe_cluster(KafkaAdminClient, KafkaError, bootstrap, timeout_s)
    finally:
        kafka_log.setLevel(level)


def _describe_cluster(
    admin_class: type, error_class: type[Exception], bootstrap: str, timeout_s: float
) -> bool:
    try:
        admin = admin_class(
            bootstrap_servers=bootstrap,
            request_timeout_ms=int(timeout_s * 1000),
            bootstrap_timeout_ms=int(timeout_s * 1000),
            client_id="lfr-stack-probe",
        )
    except (error_class, OSError, ValueError):
        return False
    try:
        return bool(admin.describe_cluster().get("brokers"))
    except (error_class, OSError):
        return False
    finally:
        admin.close()
