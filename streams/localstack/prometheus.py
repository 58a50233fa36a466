"""Debian's Prometheus, scraping the worker, the sink and the retention audit, loading the rules."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from string import Template

from streams.localstack.process import StackError
from streams.localstack.service import DEPLOY_LOCAL, LocalService

SCRAPE_TEMPLATE = DEPLOY_LOCAL / "prometheus" / "prometheus.yml"
RULES = DEPLOY_LOCAL.parent / "prometheus" / "rules.yml"
# `lfr audit retention --serve 9103` (docs/data-lifecycle.md; the chart's audit.port)
AUDIT_PORT = 9103


class PrometheusService(LocalService):
    """The local Prometheus server."""

    name = "prometheus"
    start_timeout = 60.0

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.settings.prometheus_port,)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.settings.prometheus_port}"

    def check_prerequisites(self) -> None:
        if shutil.which("prometheus") is None:
            raise StackError(
                "prometheus not found: install Debian's package (apt-get install prometheus)"
            )

    def config(self) -> str:
        """prometheus.yml with this stack's ports and the project's rules, if present."""
        rule_files = f'  - "{RULES}"' if RULES.exists() else "  []"
        return Template(SCRAPE_TEMPLATE.read_text()).substitute(
            rule_files=rule_files,
            worker_port=self.settings.worker_metrics_port,
            sink_port=self.settings.sink_metrics_port,
            audit_port=AUDIT_PORT,
            prometheus_port=self.settings.prometheus_port,
        )

    def prepare(self) -> list[str]:
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        config = self.home / "prometheus.yml"
        config.write_text(self.config())
        return [
            shutil.which("prometheus") or "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={self.home / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.settings.prometheus_port}",
            "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=7d",
        ]

    def ready(self) -> bool:
        url = f"{self.endpoint}/-/ready"
        try:
            with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310 - loopback
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False
