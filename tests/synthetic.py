"""Seeded synthetic records (operations, scans, alerts, outcomes) and their expected report.

For the sink's tests and benchmark: the expected report is computed by a
plain loop over the generated records, independently of ClickHouse.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sinks.report import iso_instant, local_date
from sinks.report_stats import median

CATEGORIES = ("wanted_by_court", "reasonable_grounds", "recall_to_prison", "missing", "other")
NAMESPACE = uuid.UUID("6f1c1b1e-0000-4000-8000-000000000000")


@dataclass
class SyntheticData:
    """Generated records by topic role, plus the expected report rows."""

    operations: list[dict[str, Any]] = field(default_factory=list)
    scans: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    expected: dict[str, dict[str, Any]] = field(default_factory=dict)


def _ms(dt: datetime) -> int:
    # integer arithmetic: timestamp() * 1000 can land a float below the millisecond
    return (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def generate(
    seed: int,
    deployments: int = 4,
    scans_per_deployment: int = 300,
    alerts_per_deployment: int = 8,
    start: datetime | None = None,
) -> SyntheticData:
    """A small scenario; event times start at ``start`` (default: 3 days ago, UTC)."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    base = start or (datetime.now(UTC) - timedelta(days=3)).replace(microsecond=0)
    data = SyntheticData()
    for d in range(deployments):
        dep = f"dep-{seed}-{d:03d}"
        site = f"site-{d % 3}"
        mode = "FIXED_REMOTE" if d % 2 == 0 else "VAN"
        cameras = [f"{site}-cam-{c}" for c in range(3 if mode == "VAN" else 5)]
        starts = base + timedelta(hours=7 * d, milliseconds=rng.randrange(1000))
        ends = starts + timedelta(minutes=rng.randrange(120, 400), milliseconds=rng.randrange(999))
        window = {
            "deployment_id": dep, "site_id": site, "location": f"Location {d}",
            "use_case": "Wanted by court", "mode": mode, "camera_ids": cameras,
            "watchlist_id": f"wl-{dep}", "watchlist_size": 15000 + d,
            "match_threshold": 0.64 if d % 3 else 0.6, "authorised_by": "Supt A",
            "authorised_at": starts - timedelta(hours=2), "starts_at": starts, "ends_at": None,
            "status": "PLANNED", "officers_present": 4, "updated_at": starts - timedelta(hours=2),
        }  # fmt: skip
        data.operations.append(window)
        data.operations.append({**window, "status": "ACTIVE", "updated_at": starts})
        data.operations.append({**window, "status": "ENDED", "ends_at": ends, "updated_at": ends})
        span_ms = int((ends - starts).total_seconds() * 1000)
        for i in range(scans_per_deployment):
            data.scans.append({
                "event_id": f"ev-{dep}-{i}", "deployment_id": dep, "site_id": site,
                "camera_id": rng.choice(cameras),
                "captured_at": starts + timedelta(milliseconds=rng.randrange(span_ms)),
                "face_quality": round(rng.random(), 3), "matched": i < alerts_per_deployment,
            })  # fmt: skip
        ttl_values: list[float] = []
        counts = dict.fromkeys(
            ("tc", "tu", "fc", "fu", "arrest", "other", "no_action"), 0
        )  # fmt: skip
        for a in range(alerts_per_deployment):
            scan = data.scans[-scans_per_deployment + a]
            alert_id = str(uuid.uuid5(NAMESPACE, f"{scan['event_id']}:wl:{a}"))
            wanted = scan["captured_at"] - timedelta(days=rng.randrange(1, 40))
            alert = {
                "alert_id": alert_id, "event_id": scan["event_id"], "deployment_id": dep,
                "site_id": site, "camera_id": scan["camera_id"], "subject_ref": f"{a:032x}",
                "watchlist_id": window["watchlist_id"], "category": rng.choice(CATEGORIES),
                "score": 0.7 + rng.random() / 10, "threshold": window["match_threshold"],
                "watchlist_version": 3, "template_model": "demo-512",
                "captured_at": scan["captured_at"],
                "alerted_at": scan["captured_at"] + timedelta(milliseconds=150),
                "wanted_since": wanted,
            }  # fmt: skip
            data.alerts.append(alert)
            true_match = rng.random() < 0.85
            confirmed = rng.random() < 0.8
            outcome = "NONE"
            if true_match and confirmed:
                outcome = rng.choice(("ARREST", "ARREST", "OTHER", "NO_ACTION"))
            located = None
            if confirmed:
                located = scan["captured_at"] + timedelta(seconds=rng.randrange(60, 1800))
            decided = scan["captured_at"] + timedelta(minutes=40)
            ttl = None if located is None else (located - wanted).total_seconds()
            resp = None if located is None else (located - scan["captured_at"]).total_seconds()
            record = {
                **{k: alert[k] for k in alert if k not in ("watchlist_id", "watchlist_version",
                                                           "template_model")},
                "officer_ref": "PC-1", "verdict": "TRUE_MATCH" if true_match else "FALSE_ALERT",
                "confirmed": confirmed, "outcome": outcome, "located_at": located,
                "decided_at": decided, "time_to_locate_s": ttl, "response_s": resp,
            }  # fmt: skip
            # an earlier, superseded decision: the latest decided_at must win
            data.outcomes.append({**record, "verdict": "FALSE_ALERT", "confirmed": False,
                                  "outcome": "NONE", "located_at": None, "time_to_locate_s": None,
                                  "response_s": None,
                                  "decided_at": decided - timedelta(minutes=5)})  # fmt: skip
            data.outcomes.append(record)
            key = ("t" if true_match else "f") + ("c" if confirmed else "u")
            counts[key] += 1
            if outcome != "NONE":
                counts[outcome.lower()] += 1
            if ttl is not None and true_match:
                ttl_values.append(ttl)  # a confirmed false alert located the wrong person
        duration_s = (_ms(ends) - _ms(starts)) / 1000
        minutes = duration_s / 60
        faces = scans_per_deployment
        data.expected[dep] = {
            "deployment_id": dep, "location": window["location"],
            "date": local_date(_ms(starts)), "starts_at": iso_instant(_ms(starts)),
            "status": "ENDED", "duration_s": duration_s,
            "use_case": window["use_case"], "watchlist_size": window["watchlist_size"],
            "min_threshold": window["match_threshold"], "total_alerts": alerts_per_deployment,
            "true_alerts_confirmed": counts["tc"], "true_alerts_unconfirmed": counts["tu"],
            "false_alerts_confirmed": counts["fc"], "false_alerts_unconfirmed": counts["fu"],
            "false_alert_rate": (counts["fc"] + counts["fu"]) / faces if faces else 0.0,
            "outcome_arrest": counts["arrest"], "outcome_other": counts["other"],
            "no_action": counts["no_action"], "faces_seen": faces, "mode": mode,
            "cameras": len(cameras), "minutes_in_use": minutes,
            "minutes_per_arrest": minutes / counts["arrest"] if counts["arrest"] else None,
            "arrest_rate": counts["arrest"] / faces if faces else None,
            "median_time_to_locate_s": median(ttl_values),
        }  # fmt: skip
    return data
