"""The project's Kafka topics: their specs from the settings, and ``lfr topics create``."""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass, field

from streams.errors import CommandError
from streams.failures import classify_exception, kafka_failure_line, recording_client_failures
from streams.settings import Settings

log = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000
# every topic that holds data about a person is kept at most this long in Kafka;
# ClickHouse keeps alerts and outcomes 31 days, so Kafka never outlives it
PERSONAL_RETENTION_MS = 7 * DAY_MS


@dataclass(frozen=True)
class TopicSpec:
    """What a topic must look like."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic of the pipeline, as the settings want it."""
    keyed = settings.partitions
    personal = {"cleanup.policy": "delete", "retention.ms": str(PERSONAL_RETENTION_MS)}
    compacted = {
        "cleanup.policy": "compact",
        "min.compaction.lag.ms": "0",
        "delete.retention.ms": str(DAY_MS),
    }
    return [
        # biometric input: short retention is a safeguard, not a tuning knob
        TopicSpec(
            settings.topic_detections,
            keyed,
            {
                "cleanup.policy": "delete",
                "retention.ms": str(settings.detections_retention_ms),
            },
        ),
        TopicSpec(settings.topic_watchlist, settings.watchlist_partitions, compacted),
        # co-partitioned with detections: same key (site_id), same count
        TopicSpec(settings.topic_operations, keyed, compacted),
        # co-partitioned with alerts: same key (alert_id), same count
        TopicSpec(settings.topic_adjudications, keyed, personal),
        TopicSpec(settings.topic_scans, keyed, personal),
        TopicSpec(settings.topic_alerts, keyed, personal),
        TopicSpec(settings.topic_outcomes, keyed, personal),
        TopicSpec(settings.topic_dlq, keyed, personal),
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
                    line = kafka_failure_line(exc, settings.kafka_bootstrap, cause)
                    message = line or f"Kafka at {settings.kafka_bootstrap}: {exc}"
                    raise CommandError(message) from exc
                log.info("waiting for Kafka at %s", settings.kafka_bootstrap)
                time.sleep(2)


def create_topics(settings: Settings) -> list[str]:
    """Create missing topics; check existing ones. Returns one line per topic."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    specs = topic_specs(settings)
    admin = KafkaAdminClient(**settings.kafka_python_config(), client_id="lfr-topics")
    try:
        names = [s.name for s in specs if s.name in set(admin.list_topics())]
        existing = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(names)}
        lines, problems = [], []
        for spec in specs:
            if spec.name in existing:
                have = existing[spec.name]
                if have != spec.partitions:
                    problems.append(
                        f"{spec.name} has {have} partitions, the settings want {spec.partitions}"
                    )
                lines.append(f"found   {spec.name} ({have} partitions)")
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


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``lfr topics create``."""
    parser = subparsers.add_parser("topics", help="manage the pipeline's Kafka topics")
    actions = parser.add_subparsers(dest="topics_action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create missing topics (idempotent)")
    create.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for a broker to answer first",
    )
    create.set_defaults(handler=_create)


def _create(args: argparse.Namespace, settings: Settings) -> int:
    wait_for_broker(settings, args.wait)
    for line in create_topics(settings):
        print(line)
    return 0
