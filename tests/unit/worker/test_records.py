"""Alert ids, pseudonyms and outcome arithmetic."""

from __future__ import annotations

import uuid
from datetime import timedelta

from pydantic import SecretStr

from streams.worker.adjudications import LAST_DECIDED, join
from streams.worker.instants import to_millis
from streams.worker.pseudonym import Pseudonymiser
from streams.worker.records import LFR_NAMESPACE, alert_id, build_outcome

from .conftest import T0


def test_alert_id_is_the_published_uuid5() -> None:
    expected = uuid.uuid5(uuid.UUID("7c9575a0-f99f-479a-9152-91252cfb5919"), "e1:W1:s1")
    assert alert_id("e1", "W1", "s1") == str(expected)
    assert LFR_NAMESPACE == expected.__class__("7c9575a0-f99f-479a-9152-91252cfb5919")
    assert alert_id("e1", "W1", "s1") != alert_id("e1", "W2", "s1")


def test_subject_ref_is_keyed_truncated_hmac() -> None:
    a = Pseudonymiser(SecretStr("k1"))
    assert a.subject_ref("s1") == a.subject_ref("s1")
    assert len(a.subject_ref("s1")) == 32
    assert a.subject_ref("s1") != Pseudonymiser(b"k2").subject_ref("s1")
    assert "k1" not in repr(a)


ALERT = {
    "alert_id": "A", "event_id": "e", "deployment_id": "D1", "site_id": "S1",
    "camera_id": "c1", "subject_ref": "r", "category": "missing", "score": 0.7,
    "threshold": 0.64, "captured_at": to_millis(T0), "alerted_at": to_millis(T0) + 500,
    "wanted_since": to_millis(T0 - timedelta(days=2)),
}  # fmt: skip


def adjudication(minutes: int, **kw: object) -> dict:
    record = {
        "alert_id": "A", "officer_ref": "o1", "verdict": "TRUE_MATCH", "confirmed": True,
        "outcome": "ARREST", "located_at": T0 + timedelta(minutes=10),
        "decided_at": T0 + timedelta(minutes=minutes),
    }  # fmt: skip
    record.update(kw)
    return record


def test_outcome_times_are_event_time() -> None:
    outcome = build_outcome(ALERT, adjudication(12))
    assert outcome["response_s"] == 600.0
    assert outcome["time_to_locate_s"] == 2 * 86400 + 600.0
    none = build_outcome(ALERT, adjudication(12, located_at=None, confirmed=False, outcome="NONE"))
    assert none["response_s"] is None and none["time_to_locate_s"] is None


def test_join_holds_then_latest_decision_wins() -> None:
    assert join(adjudication(12), None).hold
    first = join(adjudication(12), ALERT)
    assert first.outcome is not None and first.alert_state is not None
    assert first.alert_state[LAST_DECIDED] == to_millis(T0 + timedelta(minutes=12))
    again = join(adjudication(12), first.alert_state)
    assert again.outcome == first.outcome  # redelivery: same outcome, same id
    older = join(adjudication(5), first.alert_state)
    assert older.outcome is None and not older.hold
