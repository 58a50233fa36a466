"""Background service processes: PID files, liveness, ports, stopping.

A PID file holds the process id and its start time (from /proc), so a PID
that the kernel has reused for another program is never mistaken for ours.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import socket
import subprocess  # noqa: S404 - the stack's whole job is to run its services
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from common.errors import LfrError

log = logging.getLogger(__name__)


class StackError(LfrError):
    """The local stack cannot do what was asked; the message says what to do."""


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (field 22 of /proc/PID/stat), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces; fields after it are plain
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] in {"Z", "X"}


@dataclass(frozen=True)
class PidFile:
    """The PID file of one service."""

    path: Path

    def read(self) -> int | None:
        """The PID of our live process, or None (a stale file is removed)."""
        try:
            pid_text, _, started = self.path.read_text().strip().partition(" ")
            pid = int(pid_text)
        except (OSError, ValueError):
            if self.path.exists():
                log.warning("removing unreadable PID file %s", self.path)
                self.path.unlink(missing_ok=True)
            return None
        if _start_time(pid) != started or _is_zombie(pid):
            log.info("removing stale PID file %s (process %d is gone)", self.path, pid)
            self.path.unlink(missing_ok=True)
            return None
        return pid

    def write(self, pid: int) -> None:
        """Record ``pid`` with its start time."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{pid} {_start_time(pid)}\n")

    def remove(self) -> None:
        """Delete the file."""
        self.path.unlink(missing_ok=True)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something on this machine already listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def spawn(
    argv: Sequence[str],
    *,
    log_file: Path,
    pid_file: PidFile,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> int:
    """Start ``argv`` detached from this process (own session), output to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        proc = subprocess.Popen(  # noqa: S603 - argv is built by the stack, not user text
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    pid_file.write(proc.pid)
    return proc.pid


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    alive: Callable[[], bool] | None = None,
    hint: str = "",
) -> None:
    """Poll ``check`` until it is true; raise StackError on timeout or early death."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if alive is not None and not alive():
            raise StackError(f"{what} exited during start-up; {hint}")
        time.sleep(0.5)
    raise StackError(f"{what} not ready after {timeout:.0f}s; {hint}")


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def terminate(pid: int, *, timeout: float = 30.0) -> None:
    """SIGTERM the process group of ``pid``, then SIGKILL after ``timeout``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 10.0)
        while time.monotonic() < deadline:
            # reap it if it is our own child (it is not when started by an earlier `lfr`)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            if not pid_alive(pid):
                return
            time.sleep(0.2)
        if sig == signal.SIGTERM:
            log.warning("process %d ignored SIGTERM for %.0fs; sending SIGKILL", pid, timeout)
    raise StackError(f"process {pid} survived SIGKILL; check it with `ps -p {pid}`")
