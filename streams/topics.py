"""The topic catalogue: every Kafka topic of the pipeline, in one place.

Each :class:`Topic` says which setting names it, which record it carries,
how it is keyed, how many partitions it has, whether its values carry
biometric templates, and its *lifecycle class* — how long Kafka itself
keeps what it holds. ``lfr topics create`` applies the catalogue to the
broker (creating missing topics, altering drifted configs), ``lfr publish``
and ``lfr consume`` read it for records and keys, the simulator for topic
names, the sink for what it consumes, dead letters for what to redact, and
``lfr audit retention`` for the limit of each store.

Why ``segment.ms`` matters: Kafka deletes (and compacts) whole closed
segments only, and a segment closes on the first append after it is
``segment.ms`` old. Without it a busy topic's active segment stays open for
the broker default of 7 days, and everything in it outlives the topic's
retention by that much. So every topic that holds personal data rolls its
segments (:func:`segment_ms`: detections at least every
``LFR_TOPIC_SEGMENT_MS``, 15 min by default), and
compacted topics are compacted at most ``LFR_COMPACTION_MAX_LAG_MS`` after
a record lands in a closed segment; a worker appends a roll marker to the
compacted personal topics (:func:`roll_markers`) so that their last
segment closes even when nothing else is written. The bounds each class
guarantees are :func:`limit_ms`.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from common.errors import CommandError
from common.failures import classify_exception, kafka_failure_line, recording_client_failures
from common.settings import Settings

log = logging.getLogger(__name__)

KeyFn = Callable[[Mapping[str, Any]], str]
# compacted topics are cleaned once this share of the log is superseded (or after the max lag)
MIN_CLEANABLE_DIRTY_RATIO = "0.1"
DAY_MS = 86_400_000
# the key of the roll markers (a tombstone: no value, no person); one per partition
ROLL_MARKER_PREFIX = "lfr.segment-roll:p"


class Lifecycle(StrEnum):
    """How long Kafka keeps what a topic holds, and by which mechanism."""

    # biometric input: time retention LFR_DETECTIONS_RETENTION_MS
    DETECTIONS = "detections"
    # outputs about a person (alerts, outcomes, adjudications, scans, dead letters)
    PERSONAL = "personal"
    # compacted; a key's value is physically gone a bounded time after its tombstone
    COMPACTED_PERSONAL = "compacted-personal"
    # compacted record kept for audit (operation windows: who authorised what, when)
    COMPACTED_RECORD = "compacted-record"


@dataclass(frozen=True)
class Topic:
    """One entry of the catalogue.

    ``setting`` is the Settings field holding the topic name; for a Faust
    changelog it is ``None`` and ``table`` names the table (the topic is
    ``<app_id>-<table>-changelog``).
    """

    short: str
    setting: str | None
    record: str | None
    key: KeyFn | None
    lifecycle: Lifecycle
    biometric: bool = False
    partitions_setting: str = "partitions"
    table: str | None = None
    sink_table: str | None = None

    @property
    def schema(self) -> str:
        """The record schema's name (a topic without one raises ValueError)."""
        if self.record is None:
            raise ValueError(f"topic {self.short} carries no record of the contract")
        return self.record

    def key_of(self, record: Mapping[str, Any]) -> str:
        """The Kafka key of ``record`` on this topic, as the data contract says."""
        if self.key is None:
            raise ValueError(f"topic {self.short} has no contract key")
        return self.key(record)

    def name(self, settings: Settings) -> str:
        """The Kafka topic name under ``settings``."""
        if self.setting is not None:
            return str(getattr(settings, self.setting))
        return changelog_name(settings, self.table or self.short)

    def partitions(self, settings: Settings) -> int:
        """The partition count under ``settings``."""
        return int(getattr(settings, self.partitions_setting))


def changelog_name(settings: Settings, table: str) -> str:
    """The changelog topic Faust uses for ``table`` (``<app id>-<table>-changelog``)."""
    return f"{settings.app_id}-{table}-changelog"


def _watchlist_key(r: Mapping[str, Any]) -> str:
    return f"{r['watchlist_id']}:{r['subject_id']}"


CATALOGUE: tuple[Topic, ...] = (
    Topic("detections", "topic_detections", "DetectionEvent", lambda r: r["site_id"],
          Lifecycle.DETECTIONS, biometric=True),
    Topic("watchlist", "topic_watchlist", "WatchlistEntry", _watchlist_key,
          Lifecycle.COMPACTED_PERSONAL, biometric=True, partitions_setting="watchlist_partitions"),
    # co-partitioned with detections: same key (site_id), same count
    Topic("operations", "topic_operations", "OperationWindow", lambda r: r["site_id"],
          Lifecycle.COMPACTED_RECORD, sink_table="operation_windows"),
    # co-partitioned with alerts: same key (alert_id), same count
    Topic("adjudications", "topic_adjudications", "Adjudication", lambda r: r["alert_id"],
          Lifecycle.PERSONAL),
    Topic("scans", "topic_scans", "Scan", lambda r: r["site_id"], Lifecycle.PERSONAL,
          sink_table="scans"),
    Topic("alerts", "topic_alerts", "Alert", lambda r: r["alert_id"], Lifecycle.PERSONAL,
          sink_table="alerts"),
    Topic("outcomes", "topic_outcomes", "Outcome", lambda r: r["alert_id"], Lifecycle.PERSONAL,
          sink_table="outcomes"),
    Topic("dlq", "topic_dlq", "DeadLetter", lambda r: r["source_topic"], Lifecycle.PERSONAL,
          sink_table="dead_letters"),
    # the worker's Faust tables (streams/worker/runtime/tables.py)
    Topic("alerts-table", None, None, None, Lifecycle.COMPACTED_PERSONAL, table="alerts"),
    Topic("pending-adjudications-table", None, None, None, Lifecycle.COMPACTED_PERSONAL,
          table="pending_adjudications"),
    Topic("windows-table", None, None, None, Lifecycle.COMPACTED_RECORD, table="windows"),
    Topic("site-clock-table", None, None, None, Lifecycle.COMPACTED_RECORD, table="site_clock"),
)  # fmt: skip
BY_SHORT: dict[str, Topic] = {t.short: t for t in CATALOGUE}
# the topics with a record schema (publish, consume, simulator)
RECORD_TOPICS: dict[str, Topic] = {t.short: t for t in CATALOGUE if t.record is not None}


def biometric_topic_names(settings: Settings) -> frozenset[str]:
    """Names of the topics whose values carry templates, as the settings call them."""
    return frozenset(t.name(settings) for t in CATALOGUE if t.biometric)


def changelog_config(settings: Settings) -> dict[str, str]:
    """Topic configs Faust should create the personal tables' changelogs with."""
    return lifecycle_config(Lifecycle.COMPACTED_PERSONAL, settings)


def segment_ms(lifecycle: Lifecycle, settings: Settings) -> int:
    """The roll interval (``segment.ms``) of a topic of ``lifecycle``.

    Detections: LFR_TOPIC_SEGMENT_MS or a quarter of the retention, whichever
    is shorter (templates outlive their retention by at most that). Other
    delete topics: an eighth of their retention, at most a day — a week's
    alerts then outlive it by under a day, far inside the 31-day promise,
    without thousands of small segments per partition. Compacted topics:
    LFR_TOPIC_SEGMENT_MS.
    """
    if lifecycle is Lifecycle.DETECTIONS:
        return max(1000, min(settings.topic_segment_ms, settings.detections_retention_ms // 4))
    if lifecycle is Lifecycle.PERSONAL:
        return max(1000, min(DAY_MS, settings.personal_retention_ms // 8))
    return settings.topic_segment_ms


def lifecycle_config(lifecycle: Lifecycle, settings: Settings) -> dict[str, str]:
    """The topic configs that enforce ``lifecycle`` under ``settings``."""
    if lifecycle in (Lifecycle.DETECTIONS, Lifecycle.PERSONAL):
        retention = (
            settings.detections_retention_ms
            if lifecycle is Lifecycle.DETECTIONS
            else settings.personal_retention_ms
        )
        return {
            "cleanup.policy": "delete",
            "retention.ms": str(retention),
            "segment.ms": str(segment_ms(lifecycle, settings)),
        }
    return {
        "cleanup.policy": "compact",
        "segment.ms": str(segment_ms(lifecycle, settings)),
        "min.compaction.lag.ms": "0",
        "max.compaction.lag.ms": str(settings.compaction_max_lag_ms),
        "min.cleanable.dirty.ratio": MIN_CLEANABLE_DIRTY_RATIO,
        "delete.retention.ms": str(settings.tombstone_retention_ms),
    }


def limit_ms(lifecycle: Lifecycle, settings: Settings) -> int | None:
    """The longest a datum stays in a topic of ``lifecycle``, in ms (``None``: kept).

    Delete topics: the record's retention, plus one segment (the segment
    closes when its first record is ``segment.ms`` old and goes when its
    newest record is past retention), plus the broker's check interval and
    cleaner delay (LFR_RETENTION_SLACK_MS). Compacted personal topics: the
    time from a tombstone (or a superseding write) to the key's value and
    then the tombstone itself being physically gone — the segment rolls
    (``segment.ms``, the roll markers come every half of it), it is
    compacted within ``max.compaction.lag.ms``, and a tombstone survives
    ``delete.retention.ms`` more and one more compaction.
    """
    slack = settings.retention_slack_ms
    if lifecycle is Lifecycle.DETECTIONS:
        retention = settings.detections_retention_ms
        return retention + segment_ms(lifecycle, settings) + slack
    if lifecycle is Lifecycle.PERSONAL:
        retention = settings.personal_retention_ms
        return retention + segment_ms(lifecycle, settings) + slack
    if lifecycle is Lifecycle.COMPACTED_PERSONAL:
        roll = settings.topic_segment_ms + settings.topic_segment_ms // 2
        return roll + 2 * settings.compaction_max_lag_ms + settings.tombstone_retention_ms + slack
    return None


@dataclass(frozen=True)
class TopicSpec:
    """What one topic must look like on the broker."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    topic: Topic | None = None


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic of the pipeline (Faust changelogs included), as the settings want it."""
    return [
        TopicSpec(
            t.name(settings), t.partitions(settings), lifecycle_config(t.lifecycle, settings), t
        )
        for t in CATALOGUE
    ]


# failures that waiting for the broker cannot fix
FATAL_CAUSES = ("authentication", "authorization", "tls")


def wait_for_broker(settings: Settings, timeout_s: float) -> None:
    """Block until a broker answers, or raise CommandError naming the cause.

    A refused login, a TLS failure or an ACL denial fails at once: waiting
    longer cannot fix them.
    """
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout_s
    config = settings.kafka_python_config()
    with recording_client_failures() as recorder:
        while True:
            try:
                admin = KafkaAdminClient(**config)
                admin.close()
                return
            except (KafkaError, OSError) as exc:
                cause = recorder.cause()
                fatal = cause is not None and classify_exception(cause).cause in FATAL_CAUSES
                if fatal or time.monotonic() >= deadline:
                    line = kafka_failure_line(
                        exc,
                        settings.kafka_bootstrap,
                        cause,
                        sasl=settings.kafka_sasl_mechanism is not None,
                    )
                    message = line or f"Kafka at {settings.kafka_bootstrap}: {exc}"
                    raise CommandError(message) from exc
                log.info("waiting for Kafka at %s", settings.kafka_bootstrap)
                time.sleep(2)


def config_drift(
    want: Mapping[str, str], have: Mapping[str, str]
) -> dict[str, tuple[str | None, str]]:
    """Configs whose value on the broker differs from the catalogue: key -> (have, want)."""
    return {k: (have.get(k), v) for k, v in sorted(want.items()) if have.get(k) != v}


def _describe(admin: Any, names: list[str]) -> dict[str, dict[str, str]]:
    from kafka.admin import ConfigResource, ConfigResourceType

    if not names:
        return {}
    resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
    described = admin.describe_configs(resources, config_filter="all")
    return {
        name: {k: str(v["value"]) for k, v in configs.items() if v.get("value") is not None}
        for name, configs in described.get("topic", {}).items()
    }


def create_topics(settings: Settings, *, apply: bool = True) -> list[str]:
    """Create missing topics; alter the lifecycle configs of drifted ones. One line per topic.

    ``apply=False`` only reports: ``missing``, ``drift`` or ``found`` per topic.
    """
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    specs = topic_specs(settings)
    admin = KafkaAdminClient(**settings.kafka_python_config(), client_id="lfr-topics")
    try:
        listed = set(admin.list_topics())
        names = [s.name for s in specs if s.name in listed]
        existing = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(names)}
        configs = _describe(admin, names)
        lines, problems = [], []
        for spec in specs:
            if spec.name in existing:
                have = existing[spec.name]
                if have != spec.partitions:
                    problems.append(
                        f"{spec.name} has {have} partitions, the settings want {spec.partitions}"
                    )
                drift = config_drift(spec.config, configs.get(spec.name, {}))
                if drift:
                    changes = ", ".join(f"{k} {h} -> {w}" for k, (h, w) in drift.items())
                    if not apply:
                        lines.append(f"drift   {spec.name} ({changes})")
                        continue
                    resource = ConfigResource(
                        ConfigResourceType.TOPIC,
                        spec.name,
                        configs={k: w for k, (_, w) in drift.items()},
                    )
                    admin.alter_configs([resource])
                    lines.append(f"altered {spec.name} ({changes})")
                else:
                    lines.append(f"found   {spec.name} ({have} partitions, configs as set)")
                continue
            if not apply:
                lines.append(f"missing {spec.name}")
                continue
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            spec.name,
                            spec.partitions,
                            settings.kafka_replication_factor,
                            topic_configs=spec.config,
                        )
                    ]
                )
                lines.append(
                    f"created {spec.name} ({spec.partitions} partitions, "
                    + ", ".join(f"{k}={v}" for k, v in sorted(spec.config.items()))
                    + ")"
                )
            except TopicAlreadyExistsError:  # another process created it meanwhile
                lines.append(f"found   {spec.name}")
        if problems:
            raise CommandError(
                "; ".join(problems) + " — co-partitioned topics must match; "
                "recreate them or set LFR_PARTITIONS to the existing count"
            )
        return lines
    finally:
        admin.close()


def roll_marker_key(partition: int) -> bytes:
    """The key of the roll marker of ``partition`` (a tombstone that names no person)."""
    return f"{ROLL_MARKER_PREFIX}{partition}".encode()


def is_roll_marker(key: bytes | str | None) -> bool:
    """Whether a record key is a roll marker's."""
    if key is None:
        return False
    text = key if isinstance(key, str) else bytes(key).decode("utf-8", "replace")
    return text.startswith(ROLL_MARKER_PREFIX)


def roll_marker_topics(settings: Settings) -> list[tuple[str, int]]:
    """(name, partitions) of every compacted personal topic: they get roll markers."""
    return [
        (t.name(settings), t.partitions(settings))
        for t in CATALOGUE
        if t.lifecycle is Lifecycle.COMPACTED_PERSONAL
    ]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``lfr topics create``."""
    parser = subparsers.add_parser("topics", help="manage the pipeline's Kafka topics")
    actions = parser.add_subparsers(dest="topics_action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        help="create missing topics and set every topic's lifecycle configs (idempotent)",
    )
    create.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for a broker to answer first",
    )
    create.add_argument(
        "--check",
        action="store_true",
        help="change nothing: list missing topics and config drift, exit 1 if any",
    )
    create.set_defaults(handler=_create)


def _create(args: argparse.Namespace, settings: Settings) -> int:
    wait_for_broker(settings, args.wait)
    lines = create_topics(settings, apply=not args.check)
    for line in lines:
        print(line)
    return 1 if args.check and any(line.startswith(("missing", "drift")) for line in lines) else 0
