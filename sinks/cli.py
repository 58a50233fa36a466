"""``lfr migrate | sink | rollup | retention run | report``: the ClickHouse side's commands."""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import json
import logging
import signal
import sys
import threading
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from common.errors import CommandError
from common.settings import Settings
from sinks.db import NativeDatabase, Role, connect
from sinks.errors import ClickHouseUnavailable, SinkError
from sinks.migrate import migrate, wait_for_server
from sinks.report import (
    deployment_report,
    located_values,
    render_csv,
    render_json,
    summarise_time_to_locate,
    time_to_locate_report,
)
from sinks.report_table import render_report, render_time_to_locate
from sinks.retention import PERSON_DAYS, SCAN_DAYS, run_retention
from sinks.rollup import rollup

if TYPE_CHECKING:
    from sinks.sink import Sink

log = logging.getLogger(__name__)


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from exc


def register(subparsers: Any) -> None:
    """Add the sinks' subcommands to the ``lfr`` parser."""
    p = subparsers.add_parser("migrate", help="Apply the ClickHouse schema migrations.")
    p.add_argument("--wait", type=float, default=0.0, metavar="S",
                   help="Wait up to S seconds for ClickHouse to answer (default 0).")  # fmt: skip
    p.set_defaults(handler=cmd_migrate)

    p = subparsers.add_parser("sink", help="Consume result topics into ClickHouse.")
    p.add_argument("--batch-size", type=int, default=5000, help="Offsets per batch (5000).")
    p.add_argument("--linger", type=float, default=1.0, help="Seconds a partial batch waits.")
    p.add_argument("--rollup-interval", type=float, default=10.0,
                   help="Seconds between rollups of the days written (10).")  # fmt: skip
    p.add_argument("--retention-interval", type=float, default=3600.0,
                   help="Seconds between retention runs; 0 disables (3600).")  # fmt: skip
    p.add_argument("--group", default=None, help="Consumer group (default <app_id>-sink).")
    p.add_argument("--session-timeout-ms", type=int, default=10000,
                   help="Kafka group session timeout: how soon a crashed sink's partitions "
                   "move on (10000).")  # fmt: skip
    p.add_argument("--unassigned-grace", type=float, default=30.0, metavar="S",
                   help="Seconds without partitions, while the topics wait, that count as "
                   "blocked (30).")  # fmt: skip
    p.set_defaults(handler=cmd_sink)

    p = subparsers.add_parser("rollup", help="Recompute the aggregates (idempotent).")
    p.add_argument("--day", action="append", type=_iso_date, default=None,
                   help="Only this UTC day (repeatable); default every day with rows.")  # fmt: skip
    p.set_defaults(handler=cmd_rollup)

    p = subparsers.add_parser("retention", help="Drop expired day partitions.")
    sub = p.add_subparsers(dest="retention_command", metavar="ACTION", required=True)
    run = sub.add_parser("run", help="Drop due partitions that are rolled up; audit each drop.")
    run.add_argument("--person-days", type=int, default=PERSON_DAYS,
                     help=f"Days alerts, outcomes, dead letters stay ({PERSON_DAYS}).")  # fmt: skip
    run.add_argument("--scan-days", type=int, default=SCAN_DAYS,
                     help=f"Days scans are kept ({SCAN_DAYS}).")  # fmt: skip
    run.set_defaults(handler=cmd_retention)

    p = subparsers.add_parser("report", help="Print the per-deployment report.")
    p.add_argument("--format", choices=("table", "csv", "json", "html"), default="table",
                   help="html: one self-contained page with the table and charts.")  # fmt: skip
    p.add_argument("--out", default=None, metavar="FILE",
                   help="Write to FILE instead of standard output.")  # fmt: skip
    p.add_argument("--deployment", default=None, metavar="ID", help="Only this deployment.")
    p.add_argument("--since", type=_iso_date, default=None, metavar="DATE",
                   help="First start date, inclusive (LFR_REPORT_TIMEZONE).")  # fmt: skip
    p.add_argument("--until", type=_iso_date, default=None, metavar="DATE",
                   help="Last start date, inclusive (LFR_REPORT_TIMEZONE).")  # fmt: skip
    p.add_argument("--include-cancelled", action="store_true",
                   help="Also list cancelled deployments (with zero counts).")  # fmt: skip
    p.add_argument("--time-to-locate", action="store_true",
                   help="Print the time-to-locate comparison instead.")  # fmt: skip
    p.set_defaults(handler=cmd_report)


def _db(settings: Settings, role: Role, wait_s: float = 0.0, **overrides: Any) -> NativeDatabase:
    try:
        db = wait_for_server(lambda: connect(settings, role, **overrides), wait_s)
    except ClickHouseUnavailable as exc:
        raise CommandError(
            f"ClickHouse at {settings.clickhouse_host}:{settings.clickhouse_port} "
            f"is not reachable: {exc}"
        ) from exc
    assert isinstance(db, NativeDatabase)  # noqa: S101 - connect() builds one
    return db


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    """Apply pending migrations."""
    # the project's database may not exist yet: log in to the server's own
    db = _db(settings, "admin", args.wait, database="default")
    result = migrate(db, settings.clickhouse_database)
    print(
        f"ClickHouse {result.server_version}: applied {result.applied or 'none'}, "
        f"already applied {result.already or 'none'}"
    )
    return 0


def cmd_rollup(args: argparse.Namespace, settings: Settings) -> int:
    """Recompute aggregates."""
    result = rollup(_db(settings, "admin"), settings.clickhouse_database, args.day)
    print(json.dumps(result.days))
    return 0


def cmd_retention(args: argparse.Namespace, settings: Settings) -> int:
    """Drop expired partitions."""
    result = run_retention(_db(settings, "admin"), settings.clickhouse_database, datetime.now(UTC),
                           args.person_days, args.scan_days)  # fmt: skip
    print(json.dumps({"dropped": result.dropped, "kept_unrolled": result.kept_unrolled}))
    return 0


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    """Print (or write) the report, read as the analyst (read-only) user."""
    db = _db(settings, "analyst")
    out = io.StringIO()
    if args.time_to_locate:
        ttl = time_to_locate_report(db, settings.clickhouse_database)
        if args.format == "json":
            print(json.dumps(ttl, indent=2), file=out)
        else:
            _print_time_to_locate(ttl, args.format, out)
        return _emit(out.getvalue(), args.out)
    rows = deployment_report(db, settings.clickhouse_database, args.deployment, args.since,
                             args.until, timezone=settings.report_timezone,
                             include_cancelled=args.include_cancelled)  # fmt: skip
    if args.format == "json":
        print(render_json(rows), file=out)
    elif args.format == "csv":
        print(render_csv(rows), end="", file=out)
    elif args.format == "html":
        from sinks.report_html import render_html

        # the charts cover the deployments the table shows
        shown = [r["deployment_id"] for r in rows]
        values = located_values(db, settings.clickhouse_database, shown)
        by_mode: dict[str, list[float]] = {}
        for mode, _category, seconds in values:
            by_mode.setdefault(mode, []).extend(seconds)
        ttl = summarise_time_to_locate(values)
        out.write(render_html(rows, by_mode, ttl, settings.report_timezone))
    else:
        print(render_report(rows), file=out)
    return _emit(out.getvalue(), args.out)


def _emit(text: str, path: str | None) -> int:
    if path is None:
        sys.stdout.write(text)
    else:
        Path(path).write_text(text, encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _print_time_to_locate(ttl: dict[str, Any], fmt: str, out: TextIO) -> None:
    if fmt != "csv":
        print(render_time_to_locate(ttl), file=out)
        return
    print("mode,category,located,mean_s,median_s,p90_s", file=out)
    for r in [*ttl["by_mode"], *ttl["by_mode_category"]]:
        category = r.get("category", "ALL")
        line = f"{r['mode']},{category},{r['located']},{r['mean_s']},{r['median_s']},{r['p90_s']}"
        print(line, file=out)


def package_version() -> str:
    """The installed lfr-stream version ("unknown" when run from a bare checkout)."""
    try:
        return importlib.metadata.version("lfr-stream")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def cmd_sink(args: argparse.Namespace, settings: Settings) -> int:
    """Run the sink until SIGTERM/SIGINT (exit 1 when blocked too long)."""
    from sinks.sink import Sink

    return run_sink(args, settings, Sink)


def run_sink(args: argparse.Namespace, settings: Settings, sink_class: type[Sink]) -> int:
    """``lfr sink`` with ``sink_class`` (tests pass a subclass that injects faults)."""
    from kafka import KafkaConsumer, KafkaProducer

    from common.log_limit import install
    from sinks import metrics
    from sinks.sink import SinkOptions, consumer_config
    from sinks.web import serve

    install()  # repeated dead-letter and connection lines: a few a minute, the rest counted
    if not getattr(args, "debug", False):
        # its "Failed to connect" warnings (with a traceback each) repeat what the
        # sink's one "blocked" line already says
        logging.getLogger("clickhouse_driver").setLevel(logging.ERROR)
    # inserts and the rollup's INSERT ... SELECT need only the ingest user; retention's
    # partition drops are DDL, which the ingest user may not run, so they log in as admin
    db = connect(settings, "ingest")
    admin = connect(settings, "admin") if args.retention_interval > 0 else None
    options = SinkOptions(
        batch_size=args.batch_size, linger_s=args.linger,
        rollup_interval_s=args.rollup_interval, retention_interval_s=args.retention_interval,
        max_blocked_s=settings.sink_max_blocked_s, unassigned_grace_s=args.unassigned_grace,
    )  # fmt: skip
    kafka = settings.kafka_python_config()
    consumer = KafkaConsumer(
        group_id=args.group or f"{settings.app_id}-sink",
        session_timeout_ms=args.session_timeout_ms, **consumer_config(options), **kafka,
    )  # fmt: skip
    producer = KafkaProducer(acks="all", linger_ms=20, **kafka)
    sink = sink_class(settings, db, consumer, producer, options, retention_db=admin)
    probe = Readiness(settings, sink)
    metrics.publish_build_info(package_version(), settings.app_id)
    server = serve(settings.sink_metrics_port, probe.check)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        sink.run(stop)
    finally:
        server.shutdown()
        probe.close()
        consumer.close()
        producer.close(timeout=10)
    return 0


class Readiness:
    """/readyz of the sink: blocked -> 503 with the cause; else ClickHouse must answer."""

    def __init__(self, settings: Settings, sink: Sink) -> None:
        self.sink = sink
        self._db = connect(settings, "ingest")
        self._lock = threading.Lock()

    def check(self) -> tuple[bool, str]:
        """(ready, reason)."""
        ready, reason = self.sink.status()
        if not ready:
            return ready, reason
        with self._lock:  # one connection, not thread-safe: one probe at a time
            try:
                self._db.execute("SELECT 1")
            except SinkError as exc:
                return False, str(exc)
        return True, "ready"

    def close(self) -> None:
        """Drop the probe's connection."""
        self._db.close()
