"""Every copy of personal data expires on time, read back from the broker's own logs.

A private broker (own ports and data dir) checks retention and runs its
cleaner every second, so limits of seconds are real; all lifecycle settings
are seconds too. A deployment's watchlist, window, detections and an
adjudicated alert go through a real worker; the deployment ends; after the
stated bounds every topic — the pipeline's, the worker's table changelogs
and Faust's internal topics — is read from its earliest offset with a plain
consumer. No template of a face, no watchlist template or subject id of the
ended deployment, and nothing older than its limit may be left, and
``lfr audit retention`` must agree. A topic whose retention was set too
high (drift) must be reported as a breach, and ``lfr topics create`` fixes it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType
from pydantic import SecretStr

from common.settings import Settings
from schemas.templates import template_to_bytes
from streams.audit import StoreAge, audit
from streams.localstack.kafka import KafkaService
from streams.topics import create_topics, topic_specs
from streams.worker.records import alert_id
from tests.conftest import free_port

from ...unit.worker.conftest import unit, watchlist_record, window_record
from ..worker.conftest import WorkerHarness

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DIM = 512
# the broker checks retention and cleans every second (defaults: 5 min, 15 s)
FAST_BROKER = (
    "log.retention.check.interval.ms=1000",
    "log.cleaner.backoff.ms=1000",
    "log.cleaner.dedupe.buffer.size=16777216",
    "file.delete.delay.ms=1000",
)
LIMITS: dict[str, Any] = {
    "detections_retention_ms": 6000,
    "personal_retention_ms": 8000,
    "topic_segment_ms": 2000,
    "compaction_max_lag_ms": 2000,
    "tombstone_retention_ms": 2000,
    "retention_slack_ms": 6000,
    "alert_table_ttl_s": 10,
    "alert_table_keep_after_outcome_s": 3,
    "adjudication_hold_s": 3.0,
    "watchlist_purge_on_end": True,
    "watchlist_retire_grace_s": 2.0,
    "watchlist_max_hold_s": 5.0,
}


class FastKafka(KafkaService):
    """The local broker with second-scale retention checks and cleaning."""

    def server_properties(self) -> str:
        return super().server_properties() + "\n".join(FAST_BROKER) + "\n"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    state = tmp_path_factory.mktemp("fast-kafka")
    cache = Path(".lfr/kafka-lib").resolve()
    if cache.exists():  # the session's jar cache, so Maven is not asked again
        (state / "kafka-lib").symlink_to(cache)
    settings = Settings(
        kafka_bootstrap=f"127.0.0.1:{free_port()}",
        kafka_controller_port=free_port(),
        state_dir=state,
    )
    service = FastKafka(settings)
    service.start()
    try:
        yield settings
    finally:
        service.stop()


def _settings(broker: Settings, tmp_path: Path, **overrides: Any) -> Settings:
    tag = f"{time.time_ns() % 10**8:08d}"
    names: dict[str, Any] = {
        f"topic_{t}": f"t{tag}.{t}"
        for t in ("detections", "watchlist", "operations", "adjudications",
                  "scans", "alerts", "outcomes", "dlq")
    }  # fmt: skip
    return Settings(
        kafka_bootstrap=broker.kafka_bootstrap,
        app_id=f"lfr-retention-{tag}",
        partitions=1,
        watchlist_partitions=1,
        worker_metrics_port=free_port(),
        state_dir=tmp_path / "state",
        pseudonym_key=SecretStr("integration-test-key-of-32-characters"),
        **names,
        **{**LIMITS, **overrides},
    )


def detection(event_id: str, vec: np.ndarray, at: datetime) -> dict[str, Any]:
    return {"event_id": event_id, "camera_id": "c1", "site_id": "S1", "captured_at": at,
            "face_quality": 0.9, "template": template_to_bytes(vec),
            "template_model": "demo-512"}  # fmt: skip


def every_topic(h: WorkerHarness) -> dict[str, bytes]:
    """Each topic of this test (its names and the app's) -> all keys and values, raw."""
    s = h.settings
    admin = KafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
    try:
        names = sorted(
            t for t in admin.list_topics()
            if t.startswith((s.topic_detections.partition(".")[0] + ".", s.app_id))
        )  # fmt: skip
    finally:
        admin.close()
    return {
        name: b"\n".join((m.key or b"") + b"\x00" + (m.value or b"") for m in h.read(name))
        for name in names
    }


def breaches(stores: list[StoreAge]) -> list[StoreAge]:
    return [s for s in stores if s.breach]


def test_every_store_forgets_on_time_and_the_audit_proves_it(
    broker: Settings, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    s = _settings(broker, tmp_path)
    h = WorkerHarness(s, tmp_path)
    try:
        topics = {spec.name for spec in topic_specs(s)}
        assert s.topic_watchlist in topics and f"{s.app_id}-alerts-changelog" in topics
        # drift: the dead-letter topic keeps a day instead of LFR_PERSONAL_RETENTION_MS
        admin = KafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, s.topic_dlq,
                                            configs={"retention.ms": "86400000"})])  # fmt: skip
        admin.close()

        listed = [unit(i, DIM) for i in range(3)]
        for i, vec in enumerate(listed):
            entry = watchlist_record(f"subject-{i}", vec, updated_at=now - timedelta(minutes=5),
                                     wanted_since=now - timedelta(days=30))  # fmt: skip
            h.send(s.topic_watchlist, f"W1:subject-{i}", "WatchlistEntry", entry)
        window = {"starts_at": now - timedelta(minutes=1), "ends_at": None,
                  "authorised_at": now - timedelta(minutes=10),
                  "updated_at": now - timedelta(minutes=1)}  # fmt: skip
        h.send(s.topic_operations, "S1", "OperationWindow", window_record(**window))
        h.flush()
        h.start_worker()
        h.wait_ready()
        passers_by = [unit(1000 + i, DIM) for i in range(20)]
        for i, vec in enumerate(passers_by):
            h.send(s.topic_detections, "S1", "DetectionEvent", detection(f"n{i}", vec, now))
        h.send(s.topic_detections, "S1", "DetectionEvent", detection("m0", listed[0], now))
        h.send(s.topic_detections, "S1", None, b"\xc3\x01not-avro")  # a dead letter
        h.flush()
        alert = alert_id("m0", "W1", "subject-0")
        h.wait_for(s.topic_alerts, "Alert", lambda r: len(r) == 1)
        verdict = {"alert_id": alert, "officer_ref": "PC1", "verdict": "TRUE_MATCH",
                   "confirmed": True, "outcome": "ARREST", "located_at": now,
                   "decided_at": now + timedelta(seconds=1)}  # fmt: skip
        h.send(s.topic_adjudications, alert, "Adjudication", verdict)
        h.flush()
        h.wait_for(s.topic_outcomes, "Outcome", lambda r: len(r) == 1)
        h.wait_for(s.topic_dlq, "DeadLetter", lambda r: len(r) >= 1)

        # the deployment ends; a later face moves the stream past the end
        ended = window_record(**{**window, "status": "ENDED", "ends_at": now,
                                 "updated_at": now + timedelta(seconds=1)})  # fmt: skip
        h.send(s.topic_operations, "S1", "OperationWindow", ended)
        h.send(s.topic_detections, "S1", "DetectionEvent",
               detection("late", unit(5000, DIM), now + timedelta(seconds=5)))  # fmt: skip
        h.flush()
        ended_at = time.time()

        # the drifted dead-letter topic outlives its limit: a breach, and only there
        deadline = ended_at + 180
        stores: list[StoreAge] = []
        while time.time() < deadline:
            stores = audit(s, clickhouse=False)
            if {b.store for b in breaches(stores)} == {"dlq"}:
                break
            time.sleep(2)
        assert {b.store for b in breaches(stores)} == {"dlq"}, stores

        # lfr topics create puts the lifecycle back; then nothing is left past its limit
        assert any(
            line.startswith(f"altered {s.topic_dlq} (retention.ms 86400000 -> 8000")
            for line in create_topics(s)
        )
        deadline = time.time() + 120
        while time.time() < deadline and breaches(stores := audit(s, clickhouse=False)):
            time.sleep(2)
        assert not breaches(stores), stores

        # and read back raw: nothing of any face or of the ended watchlist is anywhere
        templates = [template_to_bytes(v) for v in [*passers_by, *listed]]
        deadline = time.time() + 60
        found: list[str] = []
        while time.time() < deadline:
            blobs = every_topic(h)
            found = [name for name, blob in blobs.items()
                     if any(t[:32] in blob or t[-32:] in blob for t in templates)
                     or b"subject-" in blob or alert.encode() in blob]  # fmt: skip
            if not found:
                break
            time.sleep(2)
        assert not found, f"personal data still in {found}"
        assert f"{s.app_id}-alerts-changelog" in blobs and s.topic_watchlist in blobs
        by_store = {x.store: x for x in stores}
        assert by_store["watchlist-ended"].records == 0
        assert by_store["watchlist-unassigned"].records == 0
        assert by_store["alerts-table"].limit_s is not None
    finally:
        h.close()
