"""The records the worker writes: Scan, Alert and Outcome (plain dicts for the codec).

Ids are deterministic so that redelivery after a crash reproduces the same
records and the idempotent sink collapses them. Instants are epoch
milliseconds, which the codec accepts for ``timestamp-millis`` fields.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from streams.worker.instants import optional_millis, to_millis
from streams.worker.matching import Match
from streams.worker.windows import OperationWindow

LFR_NAMESPACE = uuid.UUID("7c9575a0-f99f-479a-9152-91252cfb5919")
"""The uuid5 namespace of alert ids (published in the README; never change it)."""


def alert_id(event_id: str, watchlist_id: str, subject_id: str) -> str:
    """``uuid5(LFR_NAMESPACE, "<event_id>:<watchlist_id>:<subject_id>")`` as a string."""
    return str(uuid.uuid5(LFR_NAMESPACE, f"{event_id}:{watchlist_id}:{subject_id}"))


def build_scan(event: Mapping[str, Any], window: OperationWindow, *, matched: bool) -> dict:
    """The Scan of a gated-in detection: who saw a face where and when, no biometrics."""
    return {
        "event_id": event["event_id"],
        "deployment_id": window.deployment_id,
        "site_id": event["site_id"],
        "camera_id": event["camera_id"],
        "captured_at": to_millis(event["captured_at"]),
        "face_quality": float(event["face_quality"]),
        "matched": matched,
    }


def build_alert(
    event: Mapping[str, Any],
    window: OperationWindow,
    match: Match,
    *,
    subject_ref: str,
    watchlist_version: int,
    alerted_at_ms: int,
) -> dict:
    """The Alert for a match: everything needed to explain it later, no template."""
    return {
        "alert_id": alert_id(event["event_id"], window.watchlist_id, match.subject_id),
        "event_id": event["event_id"],
        "deployment_id": window.deployment_id,
        "site_id": event["site_id"],
        "camera_id": event["camera_id"],
        "subject_ref": subject_ref,
        "watchlist_id": window.watchlist_id,
        "category": match.category,
        "score": match.score,
        "threshold": window.match_threshold,
        "watchlist_version": watchlist_version,
        "template_model": event["template_model"],
        "captured_at": to_millis(event["captured_at"]),
        "alerted_at": alerted_at_ms,
        "wanted_since": match.wanted_since_ms,
    }


def build_outcome(alert: Mapping[str, Any], adjudication: Mapping[str, Any]) -> dict:
    """Join an alert with its adjudication.

    ``time_to_locate_s`` is located_at - wanted_since and ``response_s`` is
    located_at - captured_at (event time, so a replay gives the same figure);
    both are null when nobody was located.
    """
    located_at = optional_millis(adjudication.get("located_at"))
    time_to_locate = response = None
    if located_at is not None:
        time_to_locate = (located_at - to_millis(alert["wanted_since"])) / 1000.0
        response = (located_at - to_millis(alert["captured_at"])) / 1000.0
    return {
        "alert_id": alert["alert_id"],
        "event_id": alert["event_id"],
        "deployment_id": alert["deployment_id"],
        "site_id": alert["site_id"],
        "camera_id": alert["camera_id"],
        "subject_ref": alert["subject_ref"],
        "category": alert["category"],
        "score": float(alert["score"]),
        "threshold": float(alert["threshold"]),
        "captured_at": to_millis(alert["captured_at"]),
        "alerted_at": to_millis(alert["alerted_at"]),
        "wanted_since": to_millis(alert["wanted_since"]),
        "officer_ref": adjudication["officer_ref"],
        "verdict": adjudication["verdict"],
        "confirmed": bool(adjudication["confirmed"]),
        "outcome": adjudication["outcome"],
        "located_at": located_at,
        "decided_at": to_millis(adjudication["decided_at"]),
        "time_to_locate_s": time_to_locate,
        "response_s": response,
    }


def alert_to_state(alert: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of an alert the adjudication join needs, JSON-serialisable."""
    keys = (
        "alert_id", "event_id", "deployment_id", "site_id", "camera_id", "subject_ref",
        "category", "score", "threshold", "captured_at", "alerted_at", "wanted_since",
    )  # fmt: skip
    state = {k: alert[k] for k in keys}
    for k in ("captured_at", "alerted_at", "wanted_since"):
        state[k] = to_millis(state[k])
    return state
