"""The worker's alert tables over simulated weeks: sizes stay bounded.

Drives the functions the alerts and adjudications agents run
(:mod:`streams.worker.adjudications`: alert state, the join, the pending
hold and the alerts table's expiry rule) with a simulated wall clock, over
100,000 alerts and their adjudications spread across eight weeks — about
50 times the Met's 2024-25 alert rate (2,077 in a year). 2 % of the alerts
are never adjudicated, 3 % of the adjudications arrive before their alert,
and 1 % of the adjudications have no alert at all. The tables are plain
dicts standing in for Faust's in-memory tables; every deletion counts as
one changelog tombstone.

Reports the largest and final number of entries in each table, the bytes
of their JSON values (what the changelog and the in-memory table hold),
and the same figures as the code before this rule (held adjudications
expired, alerts never). Not a timed test: run
``.venv/bin/python bench/alert_tables_bench.py``; writes
bench/results/alert_tables.json.
"""

from __future__ import annotations

import heapq
import json
import platform
import random
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common.settings import Settings
from streams.worker.adjudications import join, should_replace_pending
from streams.worker.expiry import AlertExpiry, stamp_outcome, stamp_stored, sweep_interval_s
from streams.worker.records import alert_to_state

RESULTS = Path(__file__).resolve().parent / "results" / "alert_tables.json"
ALERTS = 100_000
WEEKS = 8
T0_MS = int(datetime(2025, 10, 1, tzinfo=UTC).timestamp() * 1000)
MINUTE = 60_000


def alert(i: int, at_ms: int) -> dict[str, Any]:
    return {"alert_id": f"alert-{i:06d}", "event_id": str(uuid.UUID(int=i)),
            "deployment_id": f"dep-{i // 500}", "site_id": f"site-{i % 7}",
            "camera_id": f"site-{i % 7}-cam-{i % 15:02d}", "subject_ref": f"{i:032x}",
            "category": "wanted_by_court", "score": 0.7, "threshold": 0.64,
            "captured_at": at_ms - 2000, "alerted_at": at_ms,
            "wanted_since": at_ms - 30 * 1440 * MINUTE}  # fmt: skip


def adjudication(alert_id: str, decided_ms: int) -> dict[str, Any]:
    return {"alert_id": alert_id, "officer_ref": "pc-1", "verdict": "TRUE_MATCH",
            "confirmed": True, "outcome": "ARREST", "located_at": decided_ms,
            "decided_at": decided_ms}  # fmt: skip


def size(table: dict[str, Any]) -> int:
    return sum(len(k) + len(json.dumps(v)) for k, v in table.items())


def run(expire: bool, settings: Settings) -> dict[str, Any]:
    rng = random.Random(12)  # noqa: S311 - a reproducible workload
    span = WEEKS * 7 * 1440 * MINUTE
    events: list[tuple[int, int, int, str, Any]] = []
    for i in range(ALERTS):
        at = T0_MS + int(span * i / ALERTS)
        a = alert(i, at)
        events.append((at, 0, len(events), "alert", a))
        roll = rng.random()
        if roll < 0.02:
            continue  # never adjudicated
        # most within minutes, some before the alert arrives (early), a tail of days
        delay = rng.choice([-30_000, 5 * MINUTE, 40 * MINUTE, 3 * 1440 * MINUTE]) if roll < 0.05 \
            else int(rng.expovariate(1 / (20 * MINUTE)))  # fmt: skip
        adj = adjudication(a["alert_id"], at + delay)
        events.append((at + delay, 1, len(events), "adjudication", adj))
    for j in range(ALERTS // 100):  # orphans: no alert ever
        at = T0_MS + rng.randrange(span)
        events.append((at, 1, len(events), "adjudication", adjudication(f"orphan-{j}", at)))
    heapq.heapify(events)
    rule = AlertExpiry(settings.alert_table_ttl_s * 1000,
                       settings.alert_table_keep_after_outcome_s * 1000)  # fmt: skip
    hold_ms = min(int(settings.adjudication_hold_s * 1000), rule.ttl_ms)
    # the worker sweeps every sweep_interval_s (60 s at the defaults); the bench every
    # 10 simulated minutes, to stay quick: entries live at most 10 minutes longer here
    sweep_ms = max(10 * MINUTE, int(sweep_interval_s(
        settings.alert_table_ttl_s, settings.alert_table_keep_after_outcome_s) * 1000))  # fmt: skip
    alerts: dict[str, Any] = {}
    pending: dict[str, Any] = {}
    peak = {"alerts": 0, "pending": 0, "alerts_bytes": 0}
    tombstones = outcomes = orphans = 0
    next_sweep = T0_MS
    samples = 0
    while events:
        now, _, _, kind, record = heapq.heappop(events)
        while next_sweep <= now:
            for key in rule.due(list(alerts.items()), next_sweep) if expire else []:
                del alerts[key]
                tombstones += 1
            for key in [k for k, v in pending.items() if next_sweep - v["held"] >= hold_ms]:
                del pending[key]
                tombstones += 1
                orphans += 1
            next_sweep += sweep_ms
        key = record["alert_id"]
        if kind == "alert":
            if key not in alerts:
                alerts[key] = stamp_stored(alert_to_state(record), now)
            held = pending.pop(key, None)
            if held is not None:
                result = join(held["adjudication"], alerts[key])
                if result.outcome is not None:
                    alerts[key] = stamp_outcome(dict(result.alert_state or {}), now)
                    outcomes += 1
        else:
            result = join(record, alerts.get(key))
            if result.outcome is not None:
                alerts[key] = stamp_outcome(dict(result.alert_state or {}), now)
                outcomes += 1
            elif result.hold and should_replace_pending(pending.get(key), record["decided_at"]):
                pending[key] = {"adjudication": record, "held": now,
                                "decided_at_ms": record["decided_at"]}  # fmt: skip
        peak["alerts"] = max(peak["alerts"], len(alerts))
        peak["pending"] = max(peak["pending"], len(pending))
        samples += 1
        if samples % 5000 == 0:
            peak["alerts_bytes"] = max(peak["alerts_bytes"], size(alerts))
    peak["alerts_bytes"] = max(peak["alerts_bytes"], size(alerts))
    return {"alerts_table_expiry": expire, "alerts_peak": peak["alerts"],
            "alerts_final": len(alerts),
            "alerts_peak_value_bytes": peak["alerts_bytes"],
            "pending_peak": peak["pending"], "pending_final": len(pending),
            "outcomes": outcomes, "orphans_dead_lettered": orphans,
            "tombstones": tombstones}  # fmt: skip


def main() -> None:
    # the defaults (31-day TTL, a day after the outcome, 300 s hold), over 8 weeks
    settings = Settings()
    results = {"alerts": ALERTS, "weeks": WEEKS, "python": platform.python_version(),
               "settings": {"alert_table_ttl_s": settings.alert_table_ttl_s,
                            "alert_table_keep_after_outcome_s":
                                settings.alert_table_keep_after_outcome_s,
                            "adjudication_hold_s": settings.adjudication_hold_s},
               "runs": [run(True, settings), run(False, settings)]}  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
