"""The alerts table's deletion rule (pure)."""

from __future__ import annotations

from streams.worker.expiry import AlertExpiry, stamp_outcome, stamp_stored, sweep_interval_s

DAY = 86_400_000
RULE = AlertExpiry(ttl_ms=31 * DAY, keep_after_outcome_ms=DAY)


def test_an_unadjudicated_alert_goes_31_days_after_it_was_stored() -> None:
    state = stamp_stored({"alerted_at": 5}, 1_000)
    assert RULE.expires_at(state) == 1_000 + 31 * DAY
    assert RULE.due([("a", state)], 1_000 + 31 * DAY - 1) == []
    assert RULE.due([("a", state)], 1_000 + 31 * DAY) == ["a"]


def test_an_adjudicated_alert_goes_a_day_after_its_outcome() -> None:
    state = stamp_outcome(stamp_stored({"alerted_at": 0}, 0), 3 * DAY)
    assert RULE.expires_at(state) == 4 * DAY


def test_the_outcome_never_extends_the_ttl() -> None:
    state = stamp_outcome(stamp_stored({"alerted_at": 0}, 0), 30 * DAY + 5)
    assert RULE.expires_at(state) == 31 * DAY


def test_an_entry_without_a_stamp_counts_from_the_alert() -> None:
    assert RULE.expires_at({"alerted_at": 7}) == 7 + 31 * DAY


def test_sweep_interval_is_bounded() -> None:
    assert sweep_interval_s(31 * 86_400, 86_400) == 60.0
    assert sweep_interval_s(2, 3) == 0.5
    assert sweep_interval_s(20, 30) == 2.0
