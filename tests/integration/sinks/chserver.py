"""A private clickhouse-server child process (own ports, own data dir) to stop and restart.

The shared server of the session is never stopped; this one exists for the
outage test. Its config is the local stack's template with our own values.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from string import Template

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[3]
CONFIG_TEMPLATE = REPO / "deploy" / "local" / "clickhouse" / "config.xml"

USERS = """<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>1000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks>
    <profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
    <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
  </interval></default></quotas>
</yandex>
"""


class PrivateServer:
    """One clickhouse-server child; ``start`` again after ``kill`` keeps the data."""

    def __init__(self, root: Path) -> None:
        if shutil.which("clickhouse-server") is None:
            raise RuntimeError("clickhouse-server is not installed")
        self.root = root
        self.tcp_port = free_port()
        self.http_port = free_port()
        (root / "data" / "tmp").mkdir(parents=True)
        (root / "log").mkdir()
        (root / "users.xml").write_text(USERS)
        config = Template(CONFIG_TEMPLATE.read_text()).safe_substitute(
            log_dir=root / "log", http_port=self.http_port, tcp_port=self.tcp_port,
            interserver_port=free_port(), data_dir=root / "data",
            users_config=root / "users.xml",
        )  # fmt: skip
        (root / "config.xml").write_text(config)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60) -> None:
        """Start and wait until the native port answers."""
        log = (self.root / "log" / "stdout.log").open("ab")
        self.proc = subprocess.Popen(
            ["clickhouse-server", f"--config-file={self.root / 'config.xml'}"],
            stdout=log, stderr=log, cwd=self.root,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"clickhouse-server exited; see {self.root / 'log'}")
            try:
                socket.create_connection(("127.0.0.1", self.tcp_port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("clickhouse-server did not start")

    def kill(self) -> None:
        """SIGKILL: the server vanishes as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
