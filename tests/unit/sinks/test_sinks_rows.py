"""Record -> row mapping: instants split, ranges checked, nothing biometric."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sinks.errors import UnmappableRecord
from sinks.rows import ALERTS, OPERATION_WINDOWS, OUTCOMES, SCANS, columnar, split_instant
from tests.synthetic import generate


def test_instant_splits_into_seconds_and_milliseconds() -> None:
    t = datetime(2026, 11, 1, 10, 0, 5, 123_999, tzinfo=UTC)
    assert split_instant(t, "x") == (int(t.timestamp()), 123)
    assert split_instant(1_700_000_000_042, "x") == (1_700_000_000, 42)


@pytest.mark.parametrize("value", [datetime(1969, 12, 31, tzinfo=UTC), 2**32 * 1000, -1])
def test_instant_outside_datetime_range_is_unmappable(value: object) -> None:
    with pytest.raises(UnmappableRecord):
        split_instant(value, "captured_at")


def test_naive_datetime_is_unmappable() -> None:
    with pytest.raises(UnmappableRecord):
        split_instant(datetime(2026, 1, 1), "x")  # noqa: DTZ001 - the case under test


def test_every_generated_record_maps_to_its_columns() -> None:
    data = generate(3, deployments=2, scans_per_deployment=20, alerts_per_deployment=3)
    pairs = [(SCANS, data.scans), (ALERTS, data.alerts), (OUTCOMES, data.outcomes),
             (OPERATION_WINDOWS, data.operations)]  # fmt: skip
    for spec, records in pairs:
        rows = [spec.map_record(r) for r in records]
        cols = columnar(spec.columns, rows)
        assert len(cols) == len(spec.columns)
        assert all(len(c) == len(records) for c in cols)
        assert "template" not in spec.columns


def test_outcome_version_is_decided_at_and_null_located_stays_null() -> None:
    data = generate(4, deployments=1, scans_per_deployment=5, alerts_per_deployment=2)
    superseded = data.outcomes[0]
    row = OUTCOMES.map_record(superseded)
    assert row["located_at"] is None and row["located_at_ms"] is None
    assert row["version"] == int(superseded["decided_at"].timestamp() * 1000)


@pytest.mark.parametrize(
    "change",
    [{"event_id": None}, {"event_id": "x" * 5000}, {"face_quality": float("nan")},
     {"captured_at": datetime(2200, 1, 1, tzinfo=UTC)}],
)  # fmt: skip
def test_bad_scan_values_are_unmappable(change: dict[str, object]) -> None:
    scan = generate(5, deployments=1, scans_per_deployment=1, alerts_per_deployment=0).scans[0]
    with pytest.raises(UnmappableRecord):
        SCANS.map_record({**scan, **change})


def test_missing_field_is_unmappable() -> None:
    scan = generate(5, deployments=1, scans_per_deployment=1, alerts_per_deployment=0).scans[0]
    del scan["camera_id"]
    with pytest.raises(UnmappableRecord):
        SCANS.map_record(scan)
