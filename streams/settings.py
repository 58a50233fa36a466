"""The one settings object of lfr-stream.

Every process parses it once at start (``Settings()``) and passes it down;
nothing else reads the environment. Each field is the environment variable
``LFR_<FIELD NAME IN CAPITALS>``; the README has the reference table and the
Helm chart's values.yaml mirrors it. Secrets are ``SecretStr`` so that they
print as ``**********``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
KAFKA_BOOTSTRAP_TIMEOUT_MS = 5000


class Settings(BaseSettings):
    """Configuration of every lfr-stream process, from ``LFR_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="LFR_", frozen=True, extra="ignore")

    # --- Kafka -----------------------------------------------------------
    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated host:port."
    )
    kafka_security_protocol: SecurityProtocol = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    kafka_sasl_mechanism: SaslMechanism | None = Field(
        None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 when the protocol is SASL_*."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (secret).")
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle (PEM) to verify brokers.")
    kafka_ssl_certfile: Path | None = Field(None, description="Client certificate (PEM) for mTLS.")
    kafka_ssl_keyfile: Path | None = Field(None, description="Client private key (PEM) for mTLS.")
    kafka_replication_factor: int = Field(
        1, ge=1, description="Replication factor of the topics `lfr topics create` makes."
    )

    # --- topics ----------------------------------------------------------
    topic_detections: str = Field("lfr.detections", description="Camera detection events.")
    topic_watchlist: str = Field("lfr.watchlist", description="Watchlist entries (compacted).")
    topic_operations: str = Field("lfr.operations", description="Operation windows (compacted).")
    topic_adjudications: str = Field("lfr.adjudications", description="Officers' verdicts.")
    topic_scans: str = Field(
        "lfr.scans", description="One record per gated-in face (no biometrics)."
    )
    topic_alerts: str = Field("lfr.alerts", description="Alerts raised by the worker.")
    topic_outcomes: str = Field("lfr.outcomes", description="Alerts joined with adjudications.")
    topic_dlq: str = Field("lfr.dlq", description="Dead letters of every stage.")
    partitions: int = Field(
        6,
        ge=1,
        description=(
            "Partitions of every keyed topic. detections/operations and "
            "alerts/adjudications must be co-partitioned, so one number serves all."
        ),
    )
    watchlist_partitions: int = Field(3, ge=1, description="Partitions of lfr.watchlist.")
    detections_retention_ms: int = Field(
        6 * 3600 * 1000,
        ge=60_000,
        description="Retention of lfr.detections (biometric input), milliseconds.",
    )

    # --- ClickHouse ------------------------------------------------------
    clickhouse_host: str = Field("127.0.0.1", description="ClickHouse host.")
    clickhouse_port: int = Field(9000, ge=1, le=65535, description="ClickHouse native port.")
    clickhouse_http_port: int = Field(8123, ge=1, le=65535, description="ClickHouse HTTP port.")
    clickhouse_database: str = Field("lfr", description="Database holding the project's tables.")
    clickhouse_user: str = Field("default", description="User the sink and migrator log in as.")
    clickhouse_password: SecretStr = Field(SecretStr(""), description="Password of that user.")
    clickhouse_secure: bool = Field(False, description="Use TLS to ClickHouse.")
    clickhouse_ingest_user: str | None = Field(
        None, description="Insert-only user the sink writes as (unset: LFR_CLICKHOUSE_USER)."
    )
    clickhouse_ingest_password: SecretStr = Field(
        SecretStr(""), description="Password of the ingest user (secret)."
    )
    clickhouse_analyst_user: str | None = Field(
        None, description="Read-only user `lfr report` reads as (unset: LFR_CLICKHOUSE_USER)."
    )
    clickhouse_analyst_password: SecretStr = Field(
        SecretStr(""), description="Password of the analyst user (secret)."
    )

    # --- processes -------------------------------------------------------
    app_id: str = Field("lfr-stream", description="Faust app id = the worker's consumer group.")
    worker_metrics_port: int = Field(9101, ge=0, le=65535, description="Worker /metrics port.")
    sink_metrics_port: int = Field(9102, ge=0, le=65535, description="Sink /metrics port.")
    sink_max_blocked_s: float = Field(
        600.0,
        gt=0,
        description=(
            "Seconds the sink may stay blocked by its environment (credentials, rights, "
            "a missing table, an unreachable server) before it exits 1 for a restart."
        ),
    )
    pseudonym_key: SecretStr = Field(
        SecretStr("local-development-only-key"),
        description="HMAC key turning subject ids into subject_ref (secret; set it in production).",
    )

    # --- worker ----------------------------------------------------------
    worker_store: str = Field(
        "memory://", description="Faust table store: memory:// or rocksdb:// (needs a volume)."
    )
    worker_max_batch: int = Field(500, ge=1, description="Detections matched per batch.")
    worker_batch_within_s: float = Field(
        0.2, gt=0, description="Seconds the worker waits to fill a batch."
    )
    allowed_lateness_s: float | None = Field(
        None,
        ge=0,
        description=(
            "Seconds a detection may lag the newest captured_at seen at its site "
            "(stream time, never the wall clock); unset: no limit."
        ),
    )
    adjudication_hold_s: float = Field(
        300.0, gt=0, description="Seconds an adjudication waits for its alert, then dead letter."
    )
    watchlist_purge_on_end: bool = Field(
        False, description="Worker tombstones a watchlist's entries when its deployment ends."
    )
    watchlist_retire_grace_s: float = Field(
        120.0,
        ge=0,
        description=(
            "Longest time (wall clock) a removed or ended watchlist stays in a worker's "
            "memory while the detections stream catches up to its end."
        ),
    )
    max_payload_bytes: int = Field(
        1 << 20, ge=1024, description="Records larger than this are dead-lettered undecoded."
    )
    report_timezone: str = Field(
        "Europe/London",
        description=(
            "IANA time zone of the report's dates: a deployment is dated by the local date "
            "of its start, as forces publish them."
        ),
    )

    # --- local stack -----------------------------------------------------
    state_dir: Path = Field(Path(".lfr"), description="Local stack data, logs and PID files.")
    stack: Literal["auto", "local", "docker"] = Field(
        "auto", description="Local stack backend: local processes, Docker (testcontainers) or auto."
    )
    kafka_controller_port: int = Field(
        9093, ge=1, le=65535, description="Local Kafka's KRaft controller port."
    )
    prometheus_port: int = Field(9090, ge=1, le=65535, description="Local Prometheus port.")

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap_has_ports(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port...], got {value!r}")
        return value

    @field_validator("report_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. Europe/London)") from exc
        return value

    @model_validator(mode="after")
    def _sasl_complete(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL_"):
            if not (self.kafka_sasl_mechanism and self.kafka_sasl_username):
                raise ValueError(
                    "LFR_KAFKA_SECURITY_PROTOCOL=SASL_* needs LFR_KAFKA_SASL_MECHANISM "
                    "and LFR_KAFKA_SASL_USERNAME (and LFR_KAFKA_SASL_PASSWORD)"
                )
        return self

    @property
    def bootstrap_servers(self) -> list[str]:
        """The bootstrap servers as a list."""
        return [s.strip() for s in self.kafka_bootstrap.split(",") if s.strip()]

    @property
    def kafka_port(self) -> int:
        """Port of the first bootstrap server (the local stack's broker port)."""
        return int(self.bootstrap_servers[0].rpartition(":")[2])

    def to_env(self) -> dict[str, str]:
        """These settings as LFR_* variables, for a child process (secrets included)."""
        env: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            env[f"LFR_{name.upper()}"] = str(value)
        return env

    def kafka_python_config(self) -> dict[str, object]:
        """Security keyword arguments for kafka-python clients."""
        config: dict[str, object] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.kafka_security_protocol,
            # a broker that cannot be reached, or refuses the login, fails a command within
            # seconds rather than kafka-python's 30 s (the cause is logged by the client)
            "bootstrap_timeout_ms": KAFKA_BOOTSTRAP_TIMEOUT_MS,
        }
        if self.kafka_sasl_mechanism:
            config["sasl_mechanism"] = self.kafka_sasl_mechanism
            config["sasl_plain_username"] = self.kafka_sasl_username
            if self.kafka_sasl_password is not None:
                config["sasl_plain_password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_ssl_cafile:
            config["ssl_cafile"] = str(self.kafka_ssl_cafile)
        if self.kafka_ssl_certfile:
            config["ssl_certfile"] = str(self.kafka_ssl_certfile)
        if self.kafka_ssl_keyfile:
            config["ssl_keyfile"] = str(self.kafka_ssl_keyfile)
        return config

    def clickhouse_config(
        self, role: Literal["admin", "ingest", "analyst"] = "admin"
    ) -> dict[str, object]:
        """Keyword arguments for ``clickhouse_driver.Client`` as the user of ``role``.

        ``admin`` (LFR_CLICKHOUSE_USER) migrates, rolls up and drops partitions;
        ``ingest`` only inserts; ``analyst`` only reads. A role without its own
        user falls back to the admin login.
        """
        user, password = self.clickhouse_user, self.clickhouse_password
        if role == "ingest" and self.clickhouse_ingest_user:
            user, password = self.clickhouse_ingest_user, self.clickhouse_ingest_password
        if role == "analyst" and self.clickhouse_analyst_user:
            user, password = self.clickhouse_analyst_user, self.clickhouse_analyst_password
        return {
            "host": self.clickhouse_host,
            "port": self.clickhouse_port,
            "database": self.clickhouse_database,
            "user": user,
            "password": password.get_secret_value(),
            "secure": self.clickhouse_secure,
        }


def reference_table() -> str:
    """The README's configuration reference: one Markdown row per LFR_* variable."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default = field.default
        if isinstance(default, SecretStr):
            shown = "(secret)" if default.get_secret_value() else "(empty)"
        elif default is None:
            shown = "(unset)"
        else:
            shown = f"`{default}`"
        rows.append(f"| `LFR_{name.upper()}` | {shown} | {field.description or ''} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(reference_table())
