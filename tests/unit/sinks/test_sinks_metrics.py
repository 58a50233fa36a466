"""The sink's metrics: batch observations equal one-by-one ones, children exist from the start."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from common.settings import Settings
from schemas.deadletter import reasons
from sinks import metrics
from sinks.sink import BatchOutcome, days_of, observe_committed, routes_for

BUCKETS = (0.5, 1, 10, 60)


def _samples(registry: CollectorRegistry, name: str) -> dict[tuple[str, str], float]:
    return {
        (s.name, s.labels.get("le", "")): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name.startswith(name) and not s.name.endswith("_created")
    }


@given(st.lists(st.floats(0, 120, allow_nan=False), max_size=60))
def test_observe_many_equals_observing_one_by_one(values: list[float]) -> None:
    one, many = CollectorRegistry(), CollectorRegistry()
    single = Histogram("h", "h", ["table"], buckets=BUCKETS, registry=one)
    batch = metrics.BatchHistogram("h", "h", ["table"], buckets=BUCKETS, registry=many)
    child = single.labels("scans")
    for v in values:
        child.observe(v)
    batch.labels("scans").observe_many(np.asarray(values, dtype=np.float64))
    got, want = _samples(many, "h"), _samples(one, "h")
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert got[key] == pytest.approx(value), key


def _sample(name: str, labels: dict[str, str]) -> float | None:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels)


def test_observe_committed_is_per_row_and_clamps_clock_skew() -> None:
    table = "unit_observe_table"
    now = 1_800_000_000.0
    outcome = BatchOutcome(3, [], 0, set())
    # 2 s, 400 s and a timestamp 5 s in our future; -1 means "no timestamp"
    outcome.timestamps_ms = [int(now * 1000) - 2000, int(now * 1000) - 400_000,
                             int(now * 1000) + 5000, -1]  # fmt: skip
    outcome.captured_ms = [int(now * 1000) - 90_000]
    observe_committed(table, outcome, now)
    latency = "lfr_sink_commit_latency_seconds"
    assert _sample(f"{latency}_count", {"table": table}) == 3
    assert _sample(f"{latency}_sum", {"table": table}) == pytest.approx(402.0)
    assert _sample(f"{latency}_bucket", {"table": table, "le": "0.01"}) == 1  # the skewed one
    assert _sample(f"{latency}_bucket", {"table": table, "le": "300.0"}) == 2
    age = "lfr_sink_event_age_seconds"
    assert _sample(f"{age}_count", {"table": table}) == 1
    assert _sample(f"{age}_sum", {"table": table}) == pytest.approx(90.0)


def test_every_labelled_child_exists_before_the_first_event() -> None:
    settings = Settings(topic_scans="unit.init.scans", topic_dlq="unit.init.dlq")
    routes = routes_for(settings)
    metrics.initialise(
        topics=routes,
        tables=[r.table for r in routes.values()],
        aged_tables=["scans"],
        reasons=reasons(),
    )
    for result in metrics.RECORD_RESULTS:
        labels = {"topic": "unit.init.scans", "result": result}
        assert _sample("lfr_sink_records_total", labels) == 0
    for table in ("scans", "alerts", "outcomes", "operation_windows", "dead_letters"):
        for kind in metrics.FAILURE_KINDS:
            labels = {"table": table, "kind": kind}
            assert _sample("lfr_sink_insert_failures_total", labels) is not None
        assert _sample("lfr_sink_commit_latency_seconds_count", {"table": table}) is not None
    assert _sample("lfr_sink_event_age_seconds_count", {"table": "scans"}) is not None
    for reason in reasons():
        assert _sample("lfr_sink_dead_letters_total", {"reason": reason}) is not None
    for result in metrics.ROLLUP_RESULTS:
        assert _sample("lfr_rollup_runs_total", {"result": result}) is not None


def test_build_info_is_exposed_once_even_when_published_twice() -> None:
    registry = CollectorRegistry()
    metrics.publish_build_info("1.2.3", "lfr-unit", registry=registry)
    metrics.publish_build_info("1.2.3", "lfr-unit", registry=registry)
    text = generate_latest(registry).decode()
    assert text.count('lfr_build_info{app_id="lfr-unit",version="1.2.3"} 1.0') == 1


def test_days_of_epoch_seconds() -> None:
    first = int(datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC).timestamp())
    assert days_of([first, first + 1, first - 5]) == {"2026-03-01", "2026-03-02"}
    assert days_of([]) == set()
