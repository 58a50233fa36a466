"""`helm test`: does the release answer? Run by the chart's test pod with the image's Python.

Checks, each reported on its own line, exit 1 if any fails:
- every worker pod's /readyz (the headless Service resolves to each pod, ready or not);
- the sink's /readyz through its Service;
- the retention audit's /readyz (its last audit read every Kafka topic and
  ClickHouse table, as the analyst: the check of that user's grants);
- Kafka answers with the pod's own settings (SASL/TLS included) and every topic
  of the pipeline exists;
- ClickHouse answers a query as the sink's (ingest) user.

The targets come from LFR_TEST_* variables the chart sets; the settings are the
usual LFR_* ones, so the check connects exactly as the processes do.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Callable


def http_ready(host: str, port: int, path: str = "/readyz", timeout: float = 5) -> list[str]:
    """GET ``path`` on every address ``host`` resolves to; one problem per failing address."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return [f"{host}: does not resolve ({exc})"]
    addresses = sorted({str(info[4][0]) for info in infos})
    problems = []
    for address in addresses:
        shown = f"[{address}]" if ":" in address else address
        url = f"http://{shown}:{port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - cluster-local http
                if resp.status != 200:
                    problems.append(f"{host} {url}: HTTP {resp.status}")
        except urllib.error.HTTPError as exc:
            problems.append(f"{host} {url}: HTTP {exc.code}")
        except OSError as exc:
            problems.append(f"{host} {url}: {exc}")
    return problems


def kafka_answers() -> list[str]:
    """Kafka answers with these settings and holds every topic of the pipeline."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    from common.settings import Settings
    from streams.topics import topic_specs

    settings = Settings()
    try:
        admin = KafkaAdminClient(
            **{**settings.kafka_python_config(), "bootstrap_timeout_ms": 10000}
        )
        try:
            present = set(admin.list_topics())
        finally:
            admin.close()
    except (KafkaError, OSError) as exc:
        return [f"Kafka {settings.kafka_bootstrap}: {type(exc).__name__}: {exc}"]
    missing = sorted(spec.name for spec in topic_specs(settings) if spec.name not in present)
    return [f"Kafka {settings.kafka_bootstrap}: missing topics {missing}"] if missing else []


def clickhouse_answers() -> list[str]:
    """ClickHouse answers a query as the sink's ingest user."""
    from sinks.db import connect
    from common.settings import Settings

    settings = Settings()
    try:
        rows = connect(settings, "ingest").execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure is the answer, reported below
        return [f"ClickHouse {settings.clickhouse_host}: {type(exc).__name__}: {exc}"]
    return [] if rows == [(1,)] else [f"ClickHouse: SELECT 1 returned {rows!r}"]


def checks_from_env(env: dict[str, str]) -> list[tuple[str, Callable[[], list[str]]]]:
    """The checks the chart asked for through LFR_TEST_* variables."""
    checks: list[tuple[str, Callable[[], list[str]]]] = []
    worker = env.get("LFR_TEST_WORKER_HOST")
    if worker:
        port = int(env["LFR_TEST_WORKER_PORT"])
        checks.append(("worker /readyz", lambda: http_ready(worker, port)))
    sink = env.get("LFR_TEST_SINK_HOST")
    if sink:
        sink_port = int(env["LFR_TEST_SINK_PORT"])
        checks.append(("sink /readyz", lambda: http_ready(sink, sink_port)))
    audit = env.get("LFR_TEST_AUDIT_HOST")
    if audit:
        audit_port = int(env["LFR_TEST_AUDIT_PORT"])
        checks.append(("audit /readyz", lambda: http_ready(audit, audit_port)))
    checks.append(("Kafka", kafka_answers))
    if env.get("LFR_TEST_CLICKHOUSE", "true") == "true":
        checks.append(("ClickHouse", clickhouse_answers))
    return checks


def main() -> int:
    failed = 0
    for name, check in checks_from_env(dict(os.environ)):
        problems = check()
        print(f"{'FAIL' if problems else 'ok  '} {name}", flush=True)
        for problem in problems:
            print(f"     {problem}", flush=True)
        failed += bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
