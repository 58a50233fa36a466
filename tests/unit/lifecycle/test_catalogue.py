"""The topic catalogue and the retention audit's arithmetic (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from common.settings import Settings
from schemas.codec import encode
from streams.audit import Raw, StoreAge, ended_deployments, oldest_age_s, render, watchlist_age
from streams.topics import (
    CATALOGUE,
    Lifecycle,
    biometric_topic_names,
    config_drift,
    is_roll_marker,
    lifecycle_config,
    limit_ms,
    roll_marker_key,
    topic_specs,
)
from tests.unit.worker.conftest import window_record

DAY_MS = 86_400_000


def test_every_personal_topic_rolls_its_segments() -> None:
    settings = Settings()
    for spec in topic_specs(settings):
        assert spec.topic is not None
        segment = int(spec.config["segment.ms"])
        if spec.config["cleanup.policy"] == "delete":
            assert segment <= int(spec.config["retention.ms"]) // 4, spec.name
            assert segment <= 86_400_000, spec.name
        else:
            assert segment == settings.topic_segment_ms, spec.name
            assert spec.config["max.compaction.lag.ms"] == str(settings.compaction_max_lag_ms)
    # a week of alerts outlives its retention by under a day, far inside 31 days
    assert limit_ms(Lifecycle.PERSONAL, settings) == (7 * 24 + 21) * 3600_000 + 600_000


def test_detections_outlive_their_retention_by_at_most_a_segment_and_the_slack() -> None:
    settings = Settings()
    config = lifecycle_config(Lifecycle.DETECTIONS, settings)
    assert config["retention.ms"] == str(6 * 3600 * 1000)
    assert config["segment.ms"] == str(15 * 60 * 1000)
    assert limit_ms(Lifecycle.DETECTIONS, settings) == (6 * 60 + 15 + 10) * 60 * 1000
    assert limit_ms(Lifecycle.COMPACTED_RECORD, settings) is None


def test_renamed_topics_are_biometric_by_their_configured_names() -> None:
    settings = Settings(topic_watchlist="force.wl", topic_detections="force.det")
    assert biometric_topic_names(settings) == {"force.wl", "force.det"}
    assert {t.short for t in CATALOGUE if t.biometric} == {"detections", "watchlist"}


def test_drift_lists_what_differs() -> None:
    want = {"segment.ms": "900000", "retention.ms": "100"}
    assert config_drift(want, {"segment.ms": "604800000", "retention.ms": "100"}) == {
        "segment.ms": ("604800000", "900000")
    }
    assert config_drift(want, want) == {}


def test_roll_markers_name_no_person() -> None:
    key = roll_marker_key(3)
    assert is_roll_marker(key) and not is_roll_marker(b"W1:subject-3")


def _op(status: str, ts: int, **kw: object) -> Raw:
    t = datetime(2025, 10, 1, tzinfo=UTC) + timedelta(milliseconds=ts)
    value = encode("OperationWindow", window_record(status=status, updated_at=t, **kw))
    return Raw(0, ts, ts, b"S1", True, value)


def test_a_watchlist_ends_when_every_deployment_using_it_has_ended() -> None:
    ops = [_op("ACTIVE", 1), _op("ENDED", 5), _op("ACTIVE", 2, deployment_id="D2")]
    assert ended_deployments(ops) == {}
    ops.append(_op("CANCELLED", 7, deployment_id="D2"))
    assert ended_deployments(ops) == {"W1": ("D2", 7)}
    records = [Raw(0, 0, 1, b"W1:s1", True), Raw(0, 1, 9, b"W1:s1", False),
               Raw(0, 2, 9, b"W2:s1", True), Raw(0, 3, 9, roll_marker_key(0), False)]  # fmt: skip
    assert watchlist_age(records, ended_deployments(ops), now_ms=10_007) == (2, 10.0)


def test_oldest_age_ignores_roll_markers_and_breach_needs_both_figures() -> None:
    records = [Raw(0, 0, 1_000, roll_marker_key(0), False), Raw(0, 1, 4_000, b"k", True)]
    assert oldest_age_s(records, 10_000) == 6.0
    assert oldest_age_s([], 10_000) is None
    assert StoreAge("a", "", 1, 6.0, 5.0).breach
    assert not StoreAge("a", "", 1, 6.0, None).breach
    assert not StoreAge("a", "", 0, None, 5.0).breach
    lines = list(render([StoreAge("a", "x", 1, 6.0, 5.0), StoreAge("b", "y", 0, None, None)]))
    assert "BREACH" in lines[1] and "kept" in lines[2]


def test_the_served_metrics_carry_age_and_limit_per_store() -> None:
    from streams.audit import REGISTRY, publish

    publish([StoreAge("detections", "x", 3, 30.0, 20.0), StoreAge("operations", "y", 1, 9.0, None)])
    value = REGISTRY.get_sample_value
    assert value("lfr_retention_oldest_age_seconds", {"store": "detections"}) == 30.0
    assert value("lfr_retention_limit_seconds", {"store": "detections"}) == 20.0
    assert value("lfr_retention_limit_seconds", {"store": "operations"}) is None
    assert value("lfr_retention_breaches") == 1.0


def test_watchlists_no_deployment_names_are_counted_apart() -> None:
    from streams.audit import unassigned_age, watchlists_in_use

    ops = [_op("ACTIVE", 1)]
    assert watchlists_in_use(ops) == {"W1"}
    records = [Raw(0, 0, 1_000, b"W1:s1", True), Raw(0, 1, 2_000, b"W9:s1", True),
               Raw(0, 2, 3_000, roll_marker_key(0), False)]  # fmt: skip
    assert unassigned_age(records, watchlists_in_use(ops), now_ms=10_000) == (1, 8.0)
