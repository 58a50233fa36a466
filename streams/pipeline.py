"""The worker and the sink as child processes: start, wait until ready, kill, wait for catch-up.

Used by ``lfr demo`` and by the end-to-end tests, so both drive the real
``lfr worker`` and ``lfr sink`` commands exactly as an operator would.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess  # noqa: S404 - runs the project's own commands
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from common.errors import LfrError
from common.settings import Settings
from streams.kafka_lag import LagProbe, LagUnknown, TopicPartitionLag

log = logging.getLogger(__name__)


class PipelineError(LfrError):
    """A pipeline process failed to start or to catch up."""


def sink_group(settings: Settings) -> str:
    """The sink's consumer group (``lfr sink`` default)."""
    return f"{settings.app_id}-sink"


class Pipeline:
    """``lfr worker`` and ``lfr sink`` for one set of settings, logs under ``log_dir``."""

    def __init__(
        self,
        settings: Settings,
        log_dir: Path,
        *,
        worker_args: tuple[str, ...] = ("--purge-on-end",),
        sink_args: tuple[str, ...] = (),
    ) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.args = {"worker": list(worker_args), "sink": list(sink_args)}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def log_file(self, name: str) -> Path:
        """Where the output of ``name`` goes (appended across restarts)."""
        return self.log_dir / f"{name}.log"

    def start(self, name: str) -> None:
        """Start ``worker`` or ``sink`` (no-op if it runs)."""
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is None:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.settings.to_env()}
        with open(self.log_file(name), "ab") as out:
            self.procs[name] = subprocess.Popen(  # noqa: S603 - our own CLI
                [sys.executable, "-m", "streams.cli", name, *self.args[name]],
                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        log.info("started %s (pid %d)", name, self.procs[name].pid)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to ``name`` and reap it."""
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        """Stop both gracefully (SIGTERM, then SIGKILL after a minute)."""
        for name in ("worker", "sink"):
            self.kill(name, signal.SIGTERM)

    def running(self, name: str) -> bool:
        """Whether ``name`` is alive."""
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    def _port(self, name: str) -> int:
        s = self.settings
        return s.worker_metrics_port if name == "worker" else s.sink_metrics_port

    def ready(self, name: str) -> bool:
        """Whether ``name`` answers 200 on /readyz."""
        url = f"http://127.0.0.1:{self._port(name)}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, name: str, timeout_s: float = 120.0) -> None:
        """Block until ``name`` is ready; raise PipelineError if it dies or times out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.ready(name):
                return
            if not self.running(name):
                raise PipelineError(f"{name} exited; see {self.log_file(name)}")
            time.sleep(0.5)
        raise PipelineError(f"{name} not ready after {timeout_s:.0f}s; see {self.log_file(name)}")

    def groups(self) -> dict[str, list[str]]:
        """Each consumer group of the pipeline and the topics it reads.

        The sink also reads the dead-letter topic (into ``dead_letters``), so
        "caught up" includes the dead letters being stored.
        """
        s = self.settings
        return {
            s.app_id: [s.topic_detections, s.topic_operations, s.topic_adjudications],
            sink_group(s): [
                s.topic_scans, s.topic_alerts, s.topic_outcomes, s.topic_operations, s.topic_dlq,
            ],
        }  # fmt: skip

    def lag(self, probe: LagProbe | None = None) -> int:
        """Records the worker and the sink have still to commit, summed.

        Raises :class:`LagUnknown` when it cannot be told (never a guessed 0).
        """
        return total_lag(self.lag_by_group(probe))

    def lag_by_group(self, probe: LagProbe | None = None) -> dict[str, TopicPartitionLag]:
        """Each group's uncommitted records per partition (see :meth:`lag`)."""
        own = probe is None
        probe = probe or LagProbe(self.settings)
        try:
            return {
                group: probe.group_lag(group, topics) for group, topics in self.groups().items()
            }
        finally:
            if own:
                probe.close()

    def wait_caught_up(
        self,
        timeout_s: float = 600.0,
        settle_s: float = 6.0,
        on_poll: Callable[[int], None] | None = None,
    ) -> None:
        """Block until both groups have committed everything, steadily for ``settle_s``.

        An unknown lag (offsets unreadable, e.g. right after a broker restart)
        is not caught up: it restarts the settle period.
        """
        deadline = time.monotonic() + timeout_s
        probe = LagProbe(self.settings)
        try:
            self._wait_zero_lag(probe, deadline, settle_s, on_poll)
        finally:
            probe.close()

    def _wait_zero_lag(
        self,
        probe: LagProbe,
        deadline: float,
        settle_s: float,
        on_poll: Callable[[int], None] | None,
    ) -> None:
        zero_since: float | None = None
        last = "no lag read yet"
        while time.monotonic() < deadline:
            for name in ("worker", "sink"):
                if name in self.procs and not self.running(name):
                    raise PipelineError(f"{name} exited; see {self.log_file(name)}")
            try:
                by_group = self.lag_by_group(probe)
            except LagUnknown as exc:
                log.info("lag unknown, not caught up: %s", exc)
                lag: int | None = None
                last = f"lag unknown: {exc}"
            else:
                lag = total_lag(by_group)
                last = describe_lag(by_group)
            if on_poll is not None and lag is not None:
                on_poll(lag)
            now = time.monotonic()
            if lag == 0:
                zero_since = zero_since or now
                if now - zero_since >= settle_s:
                    return
            else:
                zero_since = None
            time.sleep(1.0)
        raise PipelineError(
            f"the pipeline did not catch up in time (last seen: {last}); "
            f"see {self.log_file('worker')} and {self.log_file('sink')}"
        )


def total_lag(by_group: dict[str, TopicPartitionLag]) -> int:
    """Uncommitted records of every group on every partition."""
    return sum(sum(lag.values()) for lag in by_group.values())


def describe_lag(by_group: dict[str, TopicPartitionLag]) -> str:
    """``group: topic[p]=n, ...`` for every partition that is behind (``0`` if none)."""
    parts = []
    for group, lag in by_group.items():
        behind = [f"{topic}[{partition}]={n}" for (topic, partition), n in sorted(lag.items()) if n]
        parts.append(f"{group}: {', '.join(behind) or '0'}")
    return "lag " + "; ".join(parts)
