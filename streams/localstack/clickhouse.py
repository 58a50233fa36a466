"""Debian's ClickHouse server (18.16) run as a child process of the stack."""

from __future__ import annotations

import hashlib
import shutil
import xml.etree.ElementTree as ET  # noqa: N817 - the project's own users file, not input
from pathlib import Path
from string import Template
from typing import Any

from common.settings import Settings
from streams.localstack.process import StackError
from streams.localstack.security import StackSecurity, write_private
from streams.localstack.service import DEPLOY_LOCAL, LocalService

# the insert-only and read-only users of deploy/local/clickhouse/users.xml;
# local development passwords, never used anywhere else
LOCAL_ROLE_LOGINS = {
    "clickhouse_ingest_user": "ingest",
    "clickhouse_ingest_password": "ingest-local-dev",
    "clickhouse_analyst_user": "analyst",
    "clickhouse_analyst_password": "analyst-local-dev",
}
CONFIG_TEMPLATE = DEPLOY_LOCAL / "clickhouse" / "config.xml"
USERS_XML = DEPLOY_LOCAL / "clickhouse" / "users.xml"


# on the secured stack: only the TLS native port, with the stack's certificate
OPENSSL_SERVER = """\
    <tcp_port_secure>{port}</tcp_port_secure>
    <openSSL>
        <server>
            <certificateFile>{cert}</certificateFile>
            <privateKeyFile>{key}</privateKeyFile>
            <verificationMode>none</verificationMode>
            <loadDefaultCAFile>false</loadDefaultCAFile>
            <cacheSessions>true</cacheSessions>
            <disableProtocols>sslv2,sslv3,tlsv1,tlsv1_1</disableProtocols>
            <preferServerCiphers>true</preferServerCiphers>
        </server>
    </openSSL>
"""


class ClickHouseService(LocalService):
    """The local ClickHouse server (on a secured stack: TLS only, every login a password)."""

    name = "clickhouse"
    start_timeout = 60.0

    def __init__(self, settings: Settings, security: StackSecurity | None = None) -> None:
        self.security = security
        super().__init__(settings)

    @property
    def interserver_port(self) -> int:
        """Replication port; unused by a single server but must not clash."""
        return self.settings.clickhouse_http_port + 886

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.settings.clickhouse_port, self.settings.clickhouse_http_port)

    @property
    def endpoint(self) -> str:
        if self.security:
            return f"127.0.0.1:{self.settings.clickhouse_port} (native TLS only)"
        native = "native"
        return (
            f"127.0.0.1:{self.settings.clickhouse_port} ({native}), "
            f"http://127.0.0.1:{self.settings.clickhouse_http_port} (HTTP)"
        )

    def check_prerequisites(self) -> None:
        if shutil.which("clickhouse-server") is None:
            raise StackError(
                "clickhouse-server not found: install Debian's package "
                "(apt-get install clickhouse-server clickhouse-client)"
            )

    def config(self) -> str:
        """config.xml with this stack's paths and ports."""
        port = self.settings.clickhouse_port
        text = Template(CONFIG_TEMPLATE.read_text()).substitute(
            log_dir=self.home / "log",
            data_dir=self.home / "data",
            http_port=self.settings.clickhouse_http_port,
            tcp_port=port,
            interserver_port=self.interserver_port,
            users_config=USERS_XML if self.security is None else self.home / "users.xml",
        )
        if self.security is None:
            return text
        tls = self.security.tls
        secure = OPENSSL_SERVER.format(port=port, cert=tls.server_cert, key=tls.server_key)
        # TLS only: the plaintext native and HTTP listeners go
        http = f"    <http_port>{self.settings.clickhouse_http_port}</http_port>\n"
        return text.replace(f"    <tcp_port>{port}</tcp_port>\n", secure).replace(http, "")

    def users(self) -> str:
        """users.xml of the secured stack: the local users, each with a generated password."""
        if self.security is None:
            raise StackError("the plain stack uses deploy/local/clickhouse/users.xml as it is")
        creds = self.security.creds
        passwords = {
            "default": creds.clickhouse_admin_password,
            "ingest": creds.clickhouse_ingest_password,
            "analyst": creds.clickhouse_analyst_password,
        }
        root = ET.fromstring(USERS_XML.read_text())  # noqa: S314 - our own file
        users = root.find("users")
        if users is None:
            raise StackError(f"{USERS_XML} has no <users> section")
        for user in users:
            password = passwords.get(user.tag)
            if password is None:
                continue
            for old in user.findall("password") + user.findall("password_sha256_hex"):
                user.remove(old)
            hashed = ET.SubElement(user, "password_sha256_hex")
            hashed.text = hashlib.sha256(password.encode()).hexdigest()
        return ET.tostring(root, encoding="unicode")

    def prepare(self) -> list[str]:
        for sub in ("data", "log"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        config = self.home / "config.xml"
        config.write_text(self.config())
        if self.security is not None:
            write_private(self.home / "users.xml", self.users())
        server = shutil.which("clickhouse-server") or "clickhouse-server"
        return [server, f"--config-file={config}"]

    def ready(self) -> bool:
        options = self.security.clickhouse_probe() if self.security else {}
        return server_answers(
            self.settings.clickhouse_host, self.settings.clickhouse_port, **options
        )

    @property
    def data_dir(self) -> Path:
        """The server's data path."""
        return self.home / "data"


def server_answers(host: str, port: int, timeout_s: float = 3.0, **options: Any) -> bool:
    """Whether a ClickHouse server answers ``SELECT 1`` on its native port."""
    from clickhouse_driver import Client
    from clickhouse_driver.errors import Error as ClickHouseError

    client = Client(
        host=host,
        port=port,
        connect_timeout=timeout_s,
        send_receive_timeout=timeout_s,
        database="default",
        **options,
    )
    try:
        return client.execute("SELECT 1") == [(1,)]
    except (ClickHouseError, OSError, EOFError):
        return False
    finally:
        client.disconnect()
