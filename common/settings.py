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

from common.errors import ConfigError

MIN_PSEUDONYM_KEY_LENGTH = 32
"""Characters of LFR_PSEUDONYM_KEY at least (HMAC-SHA256: as long as its output)."""
DEV_PSEUDONYM_KEY = "local-development-only-key-never-use-it-in-production"
"""The publicly known key LFR_ALLOW_DEV_PSEUDONYM_KEY permits: refs under it are reversible."""

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
    # --- security: TLS files, key pass phrase, the development pseudonym key ---
    kafka_ssl_key_password: SecretStr | None = Field(
        None, description="Pass phrase of an encrypted LFR_KAFKA_SSL_KEYFILE (secret)."
    )
    clickhouse_ca_file: Path | None = Field(
        None,
        description="CA bundle (PEM) to verify ClickHouse's TLS certificate (unset: system CAs).",
    )
    clickhouse_cert_file: Path | None = Field(
        None, description="Client certificate (PEM) for TLS to ClickHouse."
    )
    clickhouse_key_file: Path | None = Field(
        None, description="Client private key (PEM) for TLS to ClickHouse."
    )
    allow_dev_pseudonym_key: bool = Field(
        False,
        description=(
            "Development only: with LFR_PSEUDONYM_KEY unset, the worker uses a fixed, publicly "
            "known key instead of refusing to start (the demo, local stack and tests set it)."
        ),
    )
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
        ge=1000,
        description="Retention of lfr.detections (biometric input), milliseconds.",
    )
    personal_retention_ms: int = Field(
        7 * 24 * 3600 * 1000,
        ge=1000,
        description=(
            "Retention of the other delete topics that concern a person (alerts, outcomes, "
            "adjudications, scans, dead letters), milliseconds."
        ),
    )
    topic_segment_ms: int = Field(
        15 * 60 * 1000,
        ge=1000,
        description=(
            "Longest time a segment of the detections topic and of the compacted personal "
            "topics stays open (Kafka deletes and compacts closed segments only), milliseconds."
        ),
    )
    compaction_max_lag_ms: int = Field(
        3600 * 1000,
        ge=1000,
        description=(
            "max.compaction.lag.ms of the compacted personal topics (watchlist, worker "
            "table changelogs): a closed segment is compacted within it, milliseconds."
        ),
    )
    tombstone_retention_ms: int = Field(
        3600 * 1000,
        ge=0,
        description=(
            "delete.retention.ms of the compacted topics: how long a tombstone (whose key "
            "may name a person) outlives the compaction that applied it, milliseconds."
        ),
    )
    retention_slack_ms: int = Field(
        10 * 60 * 1000,
        ge=0,
        description=(
            "Allowance `lfr audit retention` adds to each Kafka limit for the broker's "
            "retention check interval and cleaner delay, milliseconds."
        ),
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
    worker_group_instance_id: str | None = Field(
        None,
        description=(
            "Static group membership: a stable id unique per worker (e.g. the StatefulSet pod "
            "name). A worker restarted under the same id gets its partitions back at once, "
            "without a rebalance; unset: dynamic membership."
        ),
    )
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
    pseudonym_key: SecretStr | None = Field(
        None,
        description=(
            f"HMAC key turning subject ids into subject_ref (secret, at least "
            f"{MIN_PSEUDONYM_KEY_LENGTH} characters); the worker refuses to start without it."
        ),
    )

    # --- worker ----------------------------------------------------------
    worker_store: str = Field(
        "memory://", description="Faust table store: memory:// or rocksdb:// (needs a volume)."
    )
    worker_max_batch: int = Field(500, ge=1, description="Detections matched per batch.")
    worker_blas_threads: int = Field(
        1,
        ge=1,
        le=64,
        description=(
            "BLAS threads of the match product for watchlists of 1,024 entries or more "
            "(smaller ones always use one). Give it the cores the worker has to itself; "
            "1 suits a worker that shares its cores with others."
        ),
    )
    worker_batch_within_s: float = Field(
        0.02,
        gt=0,
        description=(
            "Seconds the worker waits for a short detections batch to fill; a backlog "
            "fills batches without waiting, so this only adds latency at low rates."
        ),
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
    alert_table_ttl_s: int = Field(
        31 * 24 * 3600,
        ge=1,
        le=31 * 24 * 3600,
        description=(
            "Seconds an alert stays in the worker's alerts table (and its changelog) after "
            "the worker stored it; at most 31 days."
        ),
    )
    alert_table_keep_after_outcome_s: int = Field(
        24 * 3600,
        ge=1,
        description=(
            "Seconds an alert stays in the worker's table after its outcome was emitted, "
            "so that a corrected or redelivered adjudication still joins."
        ),
    )
    watchlist_purge_on_end: bool = Field(
        True,
        description=(
            "Worker tombstones every entry of a watchlist once its last deployment ended or "
            "was cancelled and it left memory, so the list does not outlive its deployment "
            "on lfr.watchlist. Opt out (false) only where the list is purged otherwise."
        ),
    )
    watchlist_retire_grace_s: float = Field(
        120.0,
        ge=0,
        description=(
            "Longest time (wall clock) a removed or ended watchlist stays in a worker's "
            "memory while the detections stream catches up to its end, counted from when "
            "the worker knows both the end and a deployment using the list (a list no known "
            "deployment uses is kept: its window may arrive later)."
        ),
    )
    watchlist_max_hold_s: float = Field(
        3600.0,
        ge=0,
        description=(
            "Longest time the retire grace stands still while the worker owns no detections "
            "partition or has more than a batch of detections waiting on one (a backlog after "
            "a restart or a replay still needs the list); after it the grace runs regardless."
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

    @field_validator(
        "kafka_ssl_cafile",
        "kafka_ssl_certfile",
        "kafka_ssl_keyfile",
        "clickhouse_ca_file",
        "clickhouse_cert_file",
        "clickhouse_key_file",
    )
    @classmethod
    def _file_readable(cls, value: Path | None) -> Path | None:
        # checked at start, so a typo is one clear line, not a TLS error minutes later
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @field_validator("pseudonym_key")
    @classmethod
    def _key_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_PSEUDONYM_KEY_LENGTH:
            raise ValueError(
                f"must be at least {MIN_PSEUDONYM_KEY_LENGTH} characters "
                "(e.g. `openssl rand -base64 32`)"
            )
        return value

    @model_validator(mode="after")
    def _security_complete(self) -> Settings:
        protocol = self.kafka_security_protocol
        if protocol.startswith("SASL_"):
            password = self.kafka_sasl_password
            if not (
                self.kafka_sasl_mechanism
                and self.kafka_sasl_username
                and password is not None
                and password.get_secret_value()
            ):
                raise ValueError(
                    f"LFR_KAFKA_SECURITY_PROTOCOL={protocol} needs LFR_KAFKA_SASL_MECHANISM, "
                    "LFR_KAFKA_SASL_USERNAME and LFR_KAFKA_SASL_PASSWORD"
                )
        for cert, key, what in (
            (self.kafka_ssl_certfile, self.kafka_ssl_keyfile, "LFR_KAFKA_SSL"),
            (self.clickhouse_cert_file, self.clickhouse_key_file, "LFR_CLICKHOUSE"),
        ):
            if key is not None and cert is None:
                raise ValueError(f"{what} key file is set without its certificate file")
        if self.kafka_ssl_key_password is not None and self.kafka_ssl_keyfile is None:
            raise ValueError("LFR_KAFKA_SSL_KEY_PASSWORD is set but LFR_KAFKA_SSL_KEYFILE is not")
        tls_files = (self.clickhouse_ca_file, self.clickhouse_cert_file)
        if not self.clickhouse_secure and any(f is not None for f in tls_files):
            raise ValueError(
                "LFR_CLICKHOUSE_CA_FILE / LFR_CLICKHOUSE_CERT_FILE need LFR_CLICKHOUSE_SECURE=true"
            )
        return self

    def require_pseudonym_key(self) -> SecretStr:
        """The pseudonym key; the development key only when explicitly allowed.

        Raises ConfigError when LFR_PSEUDONYM_KEY is unset and
        LFR_ALLOW_DEV_PSEUDONYM_KEY is not true: a known key would make every
        subject_ref reversible by hashing candidate ids.
        """
        if self.pseudonym_key is not None:
            return self.pseudonym_key
        if self.allow_dev_pseudonym_key:
            return SecretStr(DEV_PSEUDONYM_KEY)
        raise ConfigError(
            "LFR_PSEUDONYM_KEY is not set: give the worker a secret key of at least "
            f"{MIN_PSEUDONYM_KEY_LENGTH} characters (e.g. `openssl rand -base64 32`); for local "
            "development only, LFR_ALLOW_DEV_PSEUDONYM_KEY=true uses a publicly known key"
        )

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
        """Connection and security keyword arguments for kafka-python clients."""
        from common.kafka_config import kafka_python_config

        return kafka_python_config(self)

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
            **self._clickhouse_tls(),
        }

    def _clickhouse_tls(self) -> dict[str, object]:
        """clickhouse-driver's TLS options: verify against the CA file, present a client cert."""
        if not self.clickhouse_secure:
            return {}
        tls: dict[str, object] = {"verify": True}
        if self.clickhouse_ca_file:
            tls["ca_certs"] = str(self.clickhouse_ca_file)
        if self.clickhouse_cert_file:
            tls["certfile"] = str(self.clickhouse_cert_file)
        if self.clickhouse_key_file:
            tls["keyfile"] = str(self.clickhouse_key_file)
        return tls


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
