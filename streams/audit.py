"""``lfr audit retention``: the oldest personal datum each store still holds, against its limit.

What a data-protection officer runs to check the lifecycle promises from the
storage itself, not from the application's intentions:

- every Kafka topic of the catalogue (:mod:`streams.topics`) and every other
  topic of the worker's Faust app (changelogs, internal topics) is read
  from its earliest offset with a plain consumer, every record that is
  physically still there (superseded values and tombstones included);
- a delete or compacted-personal topic reports its oldest record's age (by
  Kafka timestamp) against the limit of its lifecycle class; the alerts and
  pending-adjudications changelogs add the table's own lifetime;
- the watchlist topic reports, for each deployment that has ENDED or was
  CANCELLED, how long after the end any record of its watchlist (template
  or tombstone, whose key names the subject) is still there, against the
  retirement grace plus the compaction bound; and the records of watchlists
  that no deployment names, against a day (a watchlist is built at most
  24 h before its deployment) plus the compaction bound;
- each ClickHouse row table that concerns a person reports its oldest row
  against its retention in days (day partitions: one day more, plus the
  sink's retention interval).

Exit status 1 when any store breaches its limit. ``--serve`` keeps running
and exposes the same figures as ``lfr_retention_oldest_age_seconds{store}``
and ``lfr_retention_limit_seconds{store}`` for the ``LfrRetentionBreached``
alert, with /healthz (the process serves) and /readyz (the last audit read
every store) for the probes of the chart's audit Deployment.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, Gauge, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from common.errors import CommandError
from common.settings import Settings
from streams.topics import CATALOGUE, Lifecycle, Topic, is_roll_marker, limit_ms

log = logging.getLogger(__name__)

# its own registry: only `lfr audit retention --serve` exposes these
REGISTRY = CollectorRegistry()
OLDEST_AGE = Gauge(
    "lfr_retention_oldest_age_seconds",
    "Age of the oldest personal datum a store still holds (0: none).",
    ["store"],
    registry=REGISTRY,
)
LIMIT = Gauge(
    "lfr_retention_limit_seconds",
    "The stated limit of a store's oldest personal datum (absent: kept for audit).",
    ["store"],
    registry=REGISTRY,
)
BREACHES = Gauge(
    "lfr_retention_breaches", "Stores holding a datum past their limit.", registry=REGISTRY
)
LAST_AUDIT = Gauge(
    "lfr_retention_audit_timestamp_seconds", "When the last audit finished.", registry=REGISTRY
)

DAY_S = 86_400
CLOSED = frozenset({"ENDED", "CANCELLED"})
# ClickHouse row tables that concern a person: (table, time column, retention option)
ROW_TABLES: tuple[tuple[str, str, str], ...] = (
    ("alerts", "captured_at", "person_days"),
    ("outcomes", "captured_at", "person_days"),
    ("dead_letters", "failed_at", "person_days"),
    ("scans", "captured_at", "scan_days"),
)


@dataclass(frozen=True)
class StoreAge:
    """One store's oldest personal datum against its limit (seconds; None: nothing / no limit)."""

    store: str
    holds: str
    records: int
    oldest_age_s: float | None
    limit_s: float | None

    @property
    def breach(self) -> bool:
        """Whether the store holds a datum older than its limit."""
        return (
            self.limit_s is not None
            and self.oldest_age_s is not None
            and self.oldest_age_s > self.limit_s
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON form, with the verdict."""
        return {**asdict(self), "breach": self.breach}


@dataclass(frozen=True, slots=True)
class Raw:
    """What the audit keeps of one Kafka record: no value, only its shape."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    has_value: bool
    value: bytes | None = None  # kept only for lfr.operations (no personal data)


def read_topic(settings: Settings, topic: str, keep_values: bool = False) -> list[Raw]:
    """Every record physically present in ``topic``, from its earliest offset."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        group_id=None,
        enable_auto_commit=False,
        consumer_timeout_ms=2000,
        **settings.kafka_python_config(),
    )
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: list[Raw] = []
        idle = 0
        while any(consumer.position(tp) < ends[tp] for tp in tps) and idle < 20:
            polled = consumer.poll(timeout_ms=500)
            idle = 0 if polled else idle + 1
            for tp, messages in polled.items():
                for m in messages:
                    if m.offset < ends[tp]:
                        out.append(
                            Raw(m.partition, m.offset, m.timestamp, m.key, m.value is not None,
                                m.value if keep_values else None)
                        )  # fmt: skip
        return out
    finally:
        consumer.close()


def oldest_age_s(records: Iterable[Raw], now_ms: int) -> float | None:
    """Age of the oldest record that is not a roll marker (None: none)."""
    stamps = [r.timestamp_ms for r in records if not is_roll_marker(r.key)]
    return None if not stamps else max(0.0, (now_ms - min(stamps)) / 1000)


def topic_limit_s(topic: Topic, settings: Settings) -> float | None:
    """The limit of one catalogue topic, seconds (None: kept)."""
    base = limit_ms(topic.lifecycle, settings)
    if base is None:
        return None
    if topic.table == "alerts":
        base += settings.alert_table_ttl_s * 1000
    elif topic.table == "pending_adjudications":
        base += int(min(settings.adjudication_hold_s, settings.alert_table_ttl_s) * 1000)
    return base / 1000


def _latest_windows(operations: Iterable[Raw]) -> dict[str, tuple[int, str, str, int]]:
    """deployment -> (updated_at ms, watchlist_id, status, Kafka timestamp) of its latest."""
    from schemas.codec import decode
    from schemas.errors import SchemaError

    latest: dict[str, tuple[int, str, str, int]] = {}
    for r in operations:
        if r.value is None:
            continue
        try:
            w = decode("OperationWindow", r.value)
        except SchemaError:
            continue
        updated = int(w["updated_at"].timestamp() * 1000)
        held = latest.get(w["deployment_id"])
        if held is None or updated >= held[0]:
            latest[w["deployment_id"]] = (updated, w["watchlist_id"], w["status"], r.timestamp_ms)
    return latest


def watchlists_in_use(operations: Iterable[Raw]) -> set[str]:
    """Every watchlist_id some deployment on lfr.operations names."""
    return {watchlist_id for _, watchlist_id, _, _ in _latest_windows(operations).values()}


def ended_deployments(operations: Iterable[Raw]) -> dict[str, tuple[str, int]]:
    """watchlist_id -> (deployment, when its end was published, ms) for ended watchlists.

    A watchlist counts as ended when every deployment using it is ENDED or
    CANCELLED (its latest version by updated_at); the time is the latest
    such end's Kafka timestamp.
    """
    latest = _latest_windows(operations)
    by_watchlist: dict[str, list[tuple[str, str, int]]] = {}
    for deployment, (_, watchlist_id, status, ts) in latest.items():
        by_watchlist.setdefault(watchlist_id, []).append((deployment, status, ts))
    ended: dict[str, tuple[str, int]] = {}
    for watchlist_id, uses in by_watchlist.items():
        if all(status in CLOSED for _, status, _ in uses):
            deployment, _, ts = max(uses, key=lambda u: u[2])
            ended[watchlist_id] = (deployment, ts)
    return ended


def watchlist_age(
    records: Iterable[Raw], ended: dict[str, tuple[str, int]], now_ms: int
) -> tuple[int, float | None]:
    """(records of ended watchlists still present, longest time since their end in s)."""
    count, worst = 0, None
    for r in records:
        if r.key is None or is_roll_marker(r.key):
            continue
        watchlist_id = bytes(r.key).decode("utf-8", "replace").partition(":")[0]
        if watchlist_id in ended:
            count += 1
            since = max(0.0, (now_ms - ended[watchlist_id][1]) / 1000)
            worst = since if worst is None else max(worst, since)
    return count, worst


def unassigned_age(
    records: Iterable[Raw], in_use: set[str], now_ms: int
) -> tuple[int, float | None]:
    """(records of watchlists no deployment names, age of the oldest in s)."""
    orphans = [
        r for r in records
        if r.key is not None and not is_roll_marker(r.key)
        and bytes(r.key).decode("utf-8", "replace").partition(":")[0] not in in_use
    ]  # fmt: skip
    return len(orphans), oldest_age_s(orphans, now_ms)


def kafka_stores(settings: Settings, now_ms: int) -> list[StoreAge]:
    """Every Kafka store of the pipeline."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(**settings.kafka_python_config(), client_id="lfr-audit")
    try:
        present = set(admin.list_topics())
    finally:
        admin.close()
    stores: list[StoreAge] = []
    known: set[str] = set()
    operations: list[Raw] = []
    watchlist: list[Raw] = []
    for topic in CATALOGUE:
        name = topic.name(settings)
        known.add(name)
        if name not in present:
            continue
        records = read_topic(settings, name, keep_values=topic.short == "operations")
        if topic.short == "operations":
            operations = records
        if topic.short == "watchlist":
            watchlist = records
            continue  # judged against the deployments' ends below
        holds = f"{name} ({topic.lifecycle})"
        stores.append(
            StoreAge(topic.short, holds, len(records), oldest_age_s(records, now_ms),
                     topic_limit_s(topic, settings))
        )  # fmt: skip
    if settings.topic_watchlist in present:
        count, age = watchlist_age(watchlist, ended_deployments(operations), now_ms)
        bound = limit_ms(Lifecycle.COMPACTED_PERSONAL, settings) or 0
        # grace, plus what a backlog may hold it for, plus compaction
        limit = settings.watchlist_retire_grace_s + settings.watchlist_max_hold_s + bound / 1000
        stores.append(
            StoreAge("watchlist-ended", f"{settings.topic_watchlist}: entries of ended "
                     "deployments (templates and subject keys)", count, age, limit)
        )  # fmt: skip
        # a watchlist is built at most a day before its deployment: one that no
        # deployment names after that is held for nothing
        count, age = unassigned_age(watchlist, watchlists_in_use(operations), now_ms)
        stores.append(
            StoreAge("watchlist-unassigned", f"{settings.topic_watchlist}: entries of "
                     "watchlists no deployment names", count, age, DAY_S + bound / 1000)
        )  # fmt: skip
    # Faust's own topics of this app that the catalogue does not name (leader, repartition)
    for name in sorted(present - known):
        if name.startswith(f"{settings.app_id}-"):
            records = read_topic(settings, name)
            stores.append(
                StoreAge(f"internal:{name[len(settings.app_id) + 1 :]}",
                         f"{name} (Faust internal, no personal data expected)",
                         len(records), oldest_age_s(records, now_ms), None)
            )  # fmt: skip
    return stores


def clickhouse_stores(
    settings: Settings, now_s: float, person_days: int, scan_days: int, interval_s: float
) -> list[StoreAge]:
    """Every ClickHouse row table that concerns a person."""
    from sinks.db import NativeDatabase

    # reading is all it does: the read-only analyst login (falls back to the admin one)
    db = NativeDatabase(**settings.clickhouse_config("analyst"))
    database = settings.clickhouse_database
    days = {"person_days": person_days, "scan_days": scan_days}
    try:
        stores = []
        for table, column, option in ROW_TABLES:
            rows = db.execute(
                f"SELECT count(), min(toUInt32({column})) FROM {database}.{table}"  # noqa: S608
            )
            count, oldest = int(rows[0][0]), rows[0][1]
            age = None if count == 0 else max(0.0, now_s - float(oldest))
            # day partitions: a row lives until its whole day is past the cutoff
            limit = (days[option] + 1) * DAY_S + interval_s
            stores.append(
                StoreAge(f"clickhouse:{table}", f"{database}.{table} rows ({option}="
                         f"{days[option]})", count, age, limit)
            )  # fmt: skip
        return stores
    finally:
        db.close()


def audit(
    settings: Settings,
    *,
    clickhouse: bool = True,
    person_days: int = 31,
    scan_days: int = 90,
    retention_interval_s: float = 3600.0,
) -> list[StoreAge]:
    """Every store's oldest personal datum against its limit."""
    now = time.time()
    stores = kafka_stores(settings, int(now * 1000))
    if clickhouse:
        stores += clickhouse_stores(settings, now, person_days, scan_days, retention_interval_s)
    return stores


def _human(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    if seconds < 2 * DAY_S:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / DAY_S:.1f}d"


def render(stores: list[StoreAge]) -> Iterator[str]:
    """The text report: one line per store."""
    yield f"{'store':<32} {'records':>8} {'oldest':>8} {'limit':>8}  verdict  holds"
    for s in stores:
        verdict = "BREACH" if s.breach else ("kept" if s.limit_s is None else "ok")
        yield (
            f"{s.store:<32} {s.records:>8} {_human(s.oldest_age_s):>8} {_human(s.limit_s):>8}"
            f"  {verdict:<7}  {s.holds}"
        )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``lfr audit retention``."""
    from sinks.retention import PERSON_DAYS, SCAN_DAYS  # the limits the sink enforces

    parser = subparsers.add_parser("audit", help="audit what the stores still hold")
    actions = parser.add_subparsers(dest="audit_action", metavar="ACTION", required=True)
    retention = actions.add_parser(
        "retention",
        help="oldest personal datum of every Kafka topic and ClickHouse table vs its limit",
    )
    retention.add_argument("--format", choices=("text", "json"), default="text")
    retention.add_argument(
        "--no-clickhouse", action="store_true", help="audit the Kafka topics only"
    )
    retention.add_argument(
        "--person-days",
        type=int,
        default=PERSON_DAYS,
        help="retention of alerts, outcomes, dead letters (as `lfr sink`)",
    )
    retention.add_argument(
        "--scan-days", type=int, default=SCAN_DAYS, help="retention of scans (as `lfr sink`)"
    )
    retention.add_argument(
        "--retention-interval",
        type=float,
        default=3600.0,
        metavar="S",
        help="how often the sink drops partitions (as `lfr sink`)",
    )
    retention.add_argument(
        "--serve",
        type=int,
        default=None,
        metavar="PORT",
        help="keep auditing and expose the figures on this /metrics port",
    )
    retention.add_argument("--interval", type=float, default=300.0, metavar="S",
                           help="seconds between two audits with --serve")  # fmt: skip
    retention.set_defaults(handler=_retention)


def _run(args: argparse.Namespace, settings: Settings) -> list[StoreAge]:
    return audit(
        settings,
        clickhouse=not args.no_clickhouse,
        person_days=args.person_days,
        scan_days=args.scan_days,
        retention_interval_s=args.retention_interval,
    )


def _retention(args: argparse.Namespace, settings: Settings) -> int:
    if args.serve is not None:
        return _serve(args, settings)
    try:
        stores = _run(args, settings)
    except OSError as exc:
        raise CommandError(f"lfr audit retention: a store did not answer: {exc}") from exc
    if args.format == "json":
        print(json.dumps([s.as_dict() for s in stores], indent=2))
    else:
        for line in render(stores):
            print(line)
    return 1 if any(s.breach for s in stores) else 0


class Readiness:
    """What /readyz answers: ready once the latest audit read every store."""

    def __init__(self) -> None:
        self.state: tuple[bool, str] = (False, "no audit has finished yet")

    def audited(self, stores: list[StoreAge]) -> None:
        """The latest audit read every store."""
        breaches = sum(s.breach for s in stores)
        self.state = (True, f"audited {len(stores)} stores, {breaches} in breach")

    def failed(self, exc: Exception) -> None:
        """The latest audit could not read a store (the gauges keep the previous figures)."""
        self.state = (False, f"the last audit failed: {type(exc).__name__}: {exc}")


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the http.server API
        log.debug(format, *args)


def serve_http(
    port: int,
    readiness: Readiness,
    host: str = "0.0.0.0",  # noqa: S104 - scraped and probed from other hosts
) -> ThreadingWSGIServer:
    """/metrics (the audit's gauges), /healthz and /readyz on a daemon thread."""
    metrics = make_wsgi_app(REGISTRY)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path not in ("/healthz", "/readyz"):
            return metrics(environ, start_response)
        ok, reason = (True, "ok") if path == "/healthz" else readiness.state
        start_response("200 OK" if ok else "503 Service Unavailable",
                       [("Content-Type", "text/plain; charset=utf-8")])  # fmt: skip
        return [reason.encode() + b"\n"]

    server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="audit-http", daemon=True).start()
    return server


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    readiness = Readiness()
    serve_http(args.serve, readiness)
    log.info("retention audit every %.0f s; metrics on :%d/metrics", args.interval, args.serve)
    while True:
        try:
            stores = _run(args, settings)
        except Exception as exc:  # noqa: BLE001 - an unreachable store: retry next round
            log.exception("retention audit failed; retrying in %.0f s", args.interval)
            readiness.failed(exc)
        else:
            publish(stores)
            readiness.audited(stores)
        time.sleep(args.interval)


def publish(stores: list[StoreAge]) -> None:
    """Set the audit's gauges from one audit."""
    for s in stores:
        OLDEST_AGE.labels(store=s.store).set(s.oldest_age_s or 0.0)
        if s.limit_s is not None:
            LIMIT.labels(store=s.store).set(s.limit_s)
    BREACHES.set(sum(s.breach for s in stores))
    LAST_AUDIT.set_to_current_time()
