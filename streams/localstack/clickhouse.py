"""Debian's ClickHouse server (18.16) run as a child process of the stack."""

from __future__ import annotations

import shutil
from pathlib import Path
from string import Template

from streams.localstack.process import StackError
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


class ClickHouseService(LocalService):
    """The local ClickHouse server."""

    name = "clickhouse"
    start_timeout = 60.0

    @property
    def interserver_port(self) -> int:
        """Replication port; unused by a single server but must not clash."""
        return self.settings.clickhouse_http_port + 886

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.settings.clickhouse_port, self.settings.clickhouse_http_port)

    @property
    def endpoint(self) -> str:
        return (
            f"127.0.0.1:{self.settings.clickhouse_port} (native), "
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
        return Template(CONFIG_TEMPLATE.read_text()).substitute(
            log_dir=self.home / "log",
            data_dir=self.home / "data",
            http_port=self.settings.clickhouse_http_port,
            tcp_port=self.settings.clickhouse_port,
            interserver_port=self.interserver_port,
            users_config=USERS_XML,
        )

    def prepare(self) -> list[str]:
        for sub in ("data", "log"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        config = self.home / "config.xml"
        config.write_text(self.config())
        server = shutil.which("clickhouse-server") or "clickhouse-server"
        return [server, f"--config-file={config}"]

    def ready(self) -> bool:
        return server_answers(self.settings.clickhouse_host, self.settings.clickhouse_port)

    @property
    def data_dir(self) -> Path:
        """The server's data path."""
        return self.home / "data"


def server_answers(host: str, port: int, timeout_s: float = 3.0) -> bool:
    """Whether a ClickHouse server answers ``SELECT 1`` on its native port."""
    from clickhouse_driver import Client
    from clickhouse_driver.errors import Error as ClickHouseError

    client = Client(
        host=host,
        port=port,
        connect_timeout=timeout_s,
        send_receive_timeout=timeout_s,
        database="default",
    )
    try:
        return client.execute("SELECT 1") == [(1,)]
    except (ClickHouseError, OSError, EOFError):
        return False
    finally:
        client.disconnect()
