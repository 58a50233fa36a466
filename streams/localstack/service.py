"""One service of the local stack, run as a background process."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from common.settings import Settings
from streams.localstack.process import (
    PidFile,
    StackError,
    pid_alive,
    port_in_use,
    spawn,
    terminate,
    wait_until,
)

log = logging.getLogger(__name__)

# deploy/local/ beside the packages: the config templates of the local stack
DEPLOY_LOCAL = Path(__file__).resolve().parents[2] / "deploy" / "local"


@dataclass(frozen=True)
class ServiceStatus:
    """What ``lfr stack status`` prints for one service."""

    name: str
    pid: int | None
    ready: bool
    endpoint: str
    log_file: Path


class LocalService(ABC):
    """A service with a state folder, a log file, a PID file and a readiness check."""

    name: str = ""
    start_timeout: float = 60.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state_dir = settings.state_dir.resolve()
        self.home = self.state_dir / self.name
        self.log_file = self.state_dir / "logs" / f"{self.name}.log"
        self.pid_file = PidFile(self.state_dir / "run" / f"{self.name}.pid")

    @property
    @abstractmethod
    def ports(self) -> tuple[int, ...]:
        """Ports the service listens on (checked before start)."""

    @property
    @abstractmethod
    def endpoint(self) -> str:
        """Where clients reach it, for humans."""

    @abstractmethod
    def check_prerequisites(self) -> None:
        """Raise StackError naming the missing program and how to install it."""

    @abstractmethod
    def prepare(self) -> list[str]:
        """Write config and data folders; return the command line to run."""

    @abstractmethod
    def ready(self) -> bool:
        """Whether the service answers a real request now."""

    def env(self) -> dict[str, str] | None:
        """Environment of the process (None: inherit)."""
        return None

    def status(self) -> ServiceStatus:
        """PID and readiness of the service now."""
        pid = self.pid_file.read()
        return ServiceStatus(
            self.name, pid, pid is not None and self.ready(), self.endpoint, self.log_file
        )

    def start(self) -> str:
        """Start the service unless it already runs; wait until it is ready."""
        began = time.monotonic()
        pid = self.launch()
        try:
            return self.await_ready(pid, began)
        except StackError:
            if pid is not None:
                self.kill(pid)
            raise

    def launch(self) -> int | None:
        """Spawn the service unless it runs; its new PID, or None when it already ran."""
        if self.pid_file.read() is not None:
            return None
        self.check_prerequisites()
        for port in self.ports:
            if port_in_use(port):
                raise StackError(
                    f"{self.name}: port {port} is already in use by another process; "
                    f"stop it (`ss -ltnp | grep :{port}`) or configure another port"
                )
        argv = self.prepare()
        return spawn(
            argv, log_file=self.log_file, pid_file=self.pid_file, cwd=self.home, env=self.env()
        )

    def await_ready(self, launched: int | None, began: float) -> str:
        """Wait until the service answers; one line for ``lfr stack up``."""
        pid = launched if launched is not None else self.pid_file.read()
        if pid is None:
            raise StackError(f"{self.name} exited during start-up; see {self.log_file}")
        running = pid
        if launched is None and self.ready():
            return f"{self.name}: already running (pid {pid}) at {self.endpoint}"
        wait_until(
            self.ready,
            timeout=self.start_timeout,
            what=self.name,
            alive=lambda: pid_alive(running),
            hint=f"see the last lines of {self.log_file}",
        )
        if launched is None:
            return f"{self.name}: already running (pid {pid}) at {self.endpoint}"
        took = time.monotonic() - began
        return f"{self.name}: started (pid {pid}) in {took:.1f}s at {self.endpoint}"

    def kill(self, pid: int) -> None:
        """Stop a process this call started (a failed start-up) and forget its PID file."""
        terminate(pid, timeout=5)
        self.pid_file.remove()

    def crash(self) -> int | None:
        """SIGKILL the running process (a crash: no shutdown at all) and forget its PID file.

        Returns the PID killed, or None when nothing ran. The data stays, so
        :meth:`start` brings the same service back. Used by the chaos driver and
        the tests that kill a broker or a server mid-run.
        """
        pid = self.pid_file.read()
        if pid is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while pid_alive(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.1)
        self.pid_file.remove()
        return pid

    def stop(self) -> str:
        """Stop the service if it runs."""
        pid = self.pid_file.read()
        if pid is None:
            return f"{self.name}: not running"
        terminate(pid)
        self.pid_file.remove()
        return f"{self.name}: stopped (pid {pid})"
