"""Logins, certificates and access rules of the secured local stack (``--secure``).

Kafka: clients reach the brokers on SASL_SSL with SCRAM-SHA-512, verifying
the stack's own CA. The application user ``lfr`` may use only the pipeline's
topics (by prefix), its consumer groups and the Faust app's internal topics
(both by the app id prefix); ``admin`` is a super user that the brokers also
use among themselves and (with SASL PLAIN) towards the KRaft controllers.
ClickHouse: a TLS native port only, and a generated password for every
login. Secrets are generated once per state dir into ``credentials.json``
(mode 0600) and handed to clients through ``client.env``.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from common.settings import Settings
from streams.localstack.tls import TlsFiles, ensure_tls_files
from streams.topics import CATALOGUE

APP_USER = "lfr"
ADMIN_USER = "admin"
KAFKA_MECHANISM = "SCRAM-SHA-512"


@dataclass(frozen=True)
class Credentials:
    """The generated secrets of one secured stack."""

    kafka_admin_password: str
    kafka_app_password: str
    clickhouse_admin_password: str
    clickhouse_ingest_password: str
    clickhouse_analyst_password: str
    pseudonym_key: str

    @classmethod
    def generate(cls) -> Credentials:
        """Fresh random secrets (URL-safe, so they need no quoting in any config file)."""
        return cls(**{name: secrets.token_urlsafe(32) for name in cls.__dataclass_fields__})


def ensure_credentials(path: Path) -> Credentials:
    """The stack's credentials, generated on first use and readable by the owner only."""
    if path.is_file():
        return Credentials(**json.loads(path.read_text()))
    creds = Credentials.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(asdict(creds), out)
    return creds


def topic_prefixes(settings: Settings) -> list[str]:
    """Prefixes covering the pipeline's topics: each name up to and including its first dot."""
    # the catalogue's named topics; Faust's changelogs fall under the app id's prefix
    names = [t.name(settings) for t in CATALOGUE if t.setting is not None]
    return sorted({name.partition(".")[0] + "." if "." in name else name for name in names})


def application_acls(settings: Settings) -> list[tuple[str, str, str]]:
    """(resource type, prefix, operation) the application user is allowed, all PREFIXED.

    Topics: the pipeline's (produce, consume, create with configs, describe)
    and the Faust app's internal ones (changelogs, leader topic: app id
    prefix). Groups: every group whose id starts with the app id (the
    worker's, the sink's ``<app id>-sink``).
    """
    topic_ops = ("READ", "WRITE", "CREATE", "DESCRIBE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS")
    acls = [
        ("TOPIC", prefix, op)
        for prefix in [*topic_prefixes(settings), settings.app_id]
        for op in topic_ops
    ]
    acls += [("GROUP", settings.app_id, op) for op in ("READ", "DESCRIBE", "DELETE")]
    return acls


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only its owner can read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


@dataclass(frozen=True)
class StackSecurity:
    """The TLS files and credentials of one secured stack, and what each service needs."""

    tls: TlsFiles
    creds: Credentials

    @classmethod
    def ensure(cls, state_dir: Path) -> StackSecurity:
        """Create (once) and load the CA, certificates and credentials under ``state_dir``."""
        tls = ensure_tls_files(state_dir / "tls")
        return cls(tls, ensure_credentials(state_dir / "credentials.json"))

    @property
    def keystore(self) -> Path:
        """The brokers' PEM keystore: private key then certificate chain, one file."""
        return self.tls.folder / "kafka-keystore.pem"

    def kafka_properties(self, home: Path) -> list[str]:
        """server.properties lines: TLS, SCRAM on the client listener, PLAIN to controllers."""
        if not self.keystore.exists():
            write_private(
                self.keystore, self.tls.server_key.read_text() + self.tls.server_cert.read_text()
            )
        admin = self.creds.kafka_admin_password
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
        return [
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={self.keystore}",
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={self.tls.ca_cert}",
            "ssl.client.auth=none",
            f"sasl.enabled.mechanisms={KAFKA_MECHANISM}",
            f"sasl.mechanism.inter.broker.protocol={KAFKA_MECHANISM}",
            f"listener.name.sasl_ssl.sasl.enabled.mechanisms={KAFKA_MECHANISM}",
            f"listener.name.sasl_ssl.{KAFKA_MECHANISM.lower()}.sasl.jaas.config="
            f'{scram} required username="{ADMIN_USER}" password="{admin}";',
            "sasl.mechanism.controller.protocol=PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
            f"listener.name.controller.plain.sasl.jaas.config={plain} required "
            f'username="{ADMIN_USER}" password="{admin}" user_{ADMIN_USER}="{admin}";',
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            f"super.users=User:{ADMIN_USER}",
            "allow.everyone.if.no.acl.found=false",
        ]

    def scram_arguments(self) -> list[str]:
        """``kafka-storage format`` options that store the SCRAM users in the metadata."""
        users = [(ADMIN_USER, self.creds.kafka_admin_password)]
        users.append((APP_USER, self.creds.kafka_app_password))
        return [
            arg
            for name, password in users
            for arg in ("--add-scram", f"{KAFKA_MECHANISM}=[name={name},password={password}]")
        ]

    def admin_settings(self, settings: Settings) -> Settings:
        """``settings`` logging in to Kafka as the admin super user."""
        from pydantic import SecretStr

        return settings.model_copy(
            update={
                "kafka_security_protocol": "SASL_SSL",
                "kafka_sasl_mechanism": KAFKA_MECHANISM,
                "kafka_sasl_username": ADMIN_USER,
                "kafka_sasl_password": SecretStr(self.creds.kafka_admin_password),
                "kafka_ssl_cafile": self.tls.ca_cert,
            }
        )

    def clickhouse_probe(self) -> dict[str, Any]:
        """clickhouse-driver options of the readiness probe (TLS, the admin login)."""
        return {
            "secure": True,
            "verify": True,
            "ca_certs": str(self.tls.ca_cert),
            "user": "default",
            "password": self.creds.clickhouse_admin_password,
        }

    def client_environment(self) -> dict[str, str]:
        """LFR_* variables that log the pipeline in: application user, its CA, passwords."""
        return {
            "LFR_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "LFR_KAFKA_SASL_MECHANISM": KAFKA_MECHANISM,
            "LFR_KAFKA_SASL_USERNAME": APP_USER,
            "LFR_KAFKA_SASL_PASSWORD": self.creds.kafka_app_password,
            "LFR_KAFKA_SSL_CAFILE": str(self.tls.ca_cert),
            "LFR_CLICKHOUSE_SECURE": "true",
            "LFR_CLICKHOUSE_CA_FILE": str(self.tls.ca_cert),
            "LFR_CLICKHOUSE_USER": "default",
            "LFR_CLICKHOUSE_PASSWORD": self.creds.clickhouse_admin_password,
            "LFR_CLICKHOUSE_INGEST_USER": "ingest",
            "LFR_CLICKHOUSE_INGEST_PASSWORD": self.creds.clickhouse_ingest_password,
            "LFR_CLICKHOUSE_ANALYST_USER": "analyst",
            "LFR_CLICKHOUSE_ANALYST_PASSWORD": self.creds.clickhouse_analyst_password,
            "LFR_PSEUDONYM_KEY": self.creds.pseudonym_key,
        }


def create_application_acls(settings: Settings, security: StackSecurity) -> int:
    """Allow the application user what :func:`application_acls` lists (idempotent)."""
    from kafka import KafkaAdminClient
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )

    wanted = [
        ACL(
            principal=f"User:{APP_USER}",
            host="*",
            operation=ACLOperation[op],
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePattern(
                ResourceType[kind], prefix, ACLResourcePatternType.PREFIXED
            ),
        )
        for kind, prefix, op in application_acls(settings)
    ]
    from kafka.errors import KafkaError

    from streams.localstack.process import StackError

    try:
        admin = KafkaAdminClient(
            **security.admin_settings(settings).kafka_python_config(), client_id="lfr-stack-acls"
        )
        try:
            result = admin.create_acls(wanted)
        finally:
            admin.close()
    except KafkaError as exc:
        raise StackError(f"cannot create the application user's Kafka ACLs: {exc}") from exc
    failed = result.get("failed") or []
    if failed:
        raise StackError(f"Kafka refused {len(failed)} ACLs of the application user: {failed[0]}")
    return len(wanted)


def write_env_file(path: Path, env: dict[str, str]) -> None:
    """``client.env``: one ``KEY=value`` a line, for ``set -a; . client.env; set +a``."""
    lines = ["# written by `lfr stack up`: the settings that reach this stack"]
    lines += [f"{key}={value}" for key, value in sorted(env.items())]
    write_private(path, "\n".join(lines) + "\n")
