"""Ground truth: what the pipeline must report, computed from the records alone.

:class:`TruthBuilder` is fed the simulation's records in event-time order
(exactly what goes on the wire: float16 template bytes, windows, watchlist
ops, adjudications) and recomputes gating, matching and outcomes itself. It
shares no code with the worker (only the uuid5 namespace of alert ids):
each gated-in face is decoded from float16 to float32, L2-normalised, and
scored against every entry of its window's watchlist as it stands at that
moment, one float32 dot product per entry (a matrix-vector product per
face; no batching across faces); the best entry (first maximum) alerts when
its score ``>=`` the window's ``match_threshold``.

Definitions (the ClickHouse views implement the same)
-------------------------------------------------------

Gate. A detection is a *scan* of deployment D when D's latest window
version is ACTIVE or ENDED, ``starts_at <= captured_at < ends_at`` (ends_at
null = open) and its camera_id is in D's camera_ids. PLANNED and CANCELLED
windows cover nothing.

Report rows: one per deployment whose latest window status is ACTIVE or
ENDED (cancelled and never-started deployments have no row), sorted by
date, then deployment_id. Columns (``lfr report --format json`` keys):

- deployment_id, location, use_case, mode, watchlist_size: from the window
  (latest version); min_threshold = its match_threshold; cameras =
  ``len(camera_ids)``.
- date: the local date of starts_at in the report's time zone
  (``LFR_REPORT_TIMEZONE``, default Europe/London), ISO (``2025-10-02``):
  a deployment starting 23:30 UTC on a July evening is on the next day.
- starts_at: the UTC instant, ISO with milliseconds and ``Z``; status: the
  latest window's status.
- duration_s = (ends_at - starts_at) in seconds = ``duration_ms / 1000``
  (millisecond precision; null while ends_at is null).
- faces_seen: number of scans of the deployment (distinct event_id).
- total_alerts: alerts raised on its scans; a scan raises at most one alert
  per watchlist (top-1), and a deployment has one watchlist.
- true_alerts_confirmed / true_alerts_unconfirmed / false_alerts_confirmed
  / false_alerts_unconfirmed: alerts by the latest adjudication (greatest
  decided_at; on a tie the later one read) -- verdict TRUE_MATCH or
  FALSE_ALERT, ``confirmed`` true or false. An alert not yet adjudicated
  counts in total_alerts only (the simulator adjudicates every alert, so
  total = the sum of the four).
- outcome_arrest, outcome_other, no_action: latest adjudications with
  outcome ARREST, OTHER, NO_ACTION (so their sum = true_alerts_confirmed).
- false_alert_rate = (false_alerts_confirmed + false_alerts_unconfirmed) /
  faces_seen as an unrounded float (0.0 when faces_seen is 0); tables round
  it for display only.
- minutes_in_use = ``duration_s / 60`` (with duration_s = duration_ms / 1000:
  two double divisions, in this order, as sinks.report does).
- minutes_per_arrest = ``minutes_in_use / outcome_arrest``; null when there
  is no arrest.
- arrest_rate = ``outcome_arrest / faces_seen``; null when faces_seen is 0.
- median_time_to_locate_s: over the deployment's *confirmed true matches*
  (latest adjudication TRUE_MATCH, confirmed, located_at not null),
  ``time_to_locate_ms = located_at - wanted_since`` (integer milliseconds;
  wanted_since from the alert, i.e. the watchlist entry), seconds =
  ``time_to_locate_ms / 1000``; the median of those seconds; null when there
  is none. A confirmed false alert has a located_at too (officers stopped the
  look-alike), but that is not the time it took to locate a wanted person.

Median and quantiles (as sinks/report_stats.py and the views define them):
the median is the middle value of the sorted values, or the mean ``(a + b) /
2`` of the two middle ones for an even count; p90 interpolates linearly
between closest ranks (numpy's default): ``h = (n - 1) * 0.9``, ``lo =
floor(h)``, ``v[lo] + (v[lo + 1] - v[lo]) * (h - lo)``. :func:`median` and
:func:`quantile` implement them here again, on purpose without sharing code.

Time to locate (``time_to_locate`` key, the shape of ``lfr report
--time-to-locate --format json``): over the same confirmed true matches,
by (mode, category) and by mode: located (the count), mean_s =
``math.fsum(seconds) / located`` (exactly rounded sum, so independent of
summation order), median_s and p90_s as above;
``median_reduction_fixed_vs_van = 1 - FIXED_REMOTE median / VAN median``
(null when a mode has none). The ``fixed_vs_van`` key adds the mean
reduction and ``response_s`` (located_at - captured_at) by mode: fixed-site
officers reach people sooner.

Every instant is an integer of epoch milliseconds internally, so durations
and times are exact to the millisecond.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from streams.simulator.ids import LFR_NAMESPACE
from streams.simulator.scenario import Scenario

_COVERING = ("ACTIVE", "ENDED")
_WIRE = np.dtype("<f2")


def to_ms(value: Any) -> int:
    """Epoch milliseconds from an aware datetime, an int, or an ISO-8601 string."""
    if isinstance(value, datetime):
        delta = value - datetime(1970, 1, 1, tzinfo=UTC)
        return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return to_ms(datetime.fromisoformat(value))
    raise TypeError(f"not an instant: {type(value).__name__}")


def median(seconds: Iterable[float]) -> float:
    """Middle value, or the mean of the two middle values for an even count."""
    ordered = sorted(seconds)
    if not ordered:
        raise ValueError("median of no values")
    n = len(ordered)
    return (ordered[(n + 1) // 2 - 1] + ordered[n // 2]) / 2


def quantile(seconds: Iterable[float], level: float) -> float:
    """Linear interpolation between closest ranks (numpy's default method)."""
    ordered = sorted(seconds)
    if not ordered:
        raise ValueError("quantile of no values")
    h = (len(ordered) - 1) * level
    lo = math.floor(h)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (h - lo)


def _iso(ms: int) -> str:
    text = datetime.fromtimestamp(ms // 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{ms % 1000:03d}Z"


@dataclass(slots=True)
class _Entry:
    category: str
    wanted_since_ms: int
    vector: np.ndarray


@dataclass(slots=True)
class _Alert:
    deployment_id: str
    captured_at_ms: int
    wanted_since_ms: int
    category: str
    mode: str


@dataclass(slots=True)
class _Counts:
    faces: int = 0
    alerts: list[str] = field(default_factory=list)


def _unit(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


class TruthBuilder:
    """Recomputes the pipeline's results from the records, fed in event-time order."""

    def __init__(self, timezone: str = "Europe/London") -> None:
        self.zone = ZoneInfo(timezone)
        self.windows: dict[str, dict[str, Any]] = {}
        self.site_deployments: dict[str, list[str]] = defaultdict(list)
        self.watchlists: dict[str, dict[str, _Entry]] = defaultdict(dict)
        self.counts: dict[str, _Counts] = defaultdict(_Counts)
        self.alerts: dict[str, _Alert] = {}
        self.adjudications: dict[str, dict[str, Any]] = {}
        self.detections = 0
        self.gated_out = 0
        self._matrices: dict[str, tuple[list[str], np.ndarray]] = {}
        self._spans: dict[str, tuple[bool, frozenset[str], int, int | None]] = {}

    def _matrix(self, watchlist_id: str) -> tuple[list[str], np.ndarray]:
        cached = self._matrices.get(watchlist_id)
        if cached is None:
            entries = self.watchlists.get(watchlist_id, {})
            subject_ids = list(entries)
            matrix = (
                np.stack([entries[s].vector for s in subject_ids])
                if subject_ids
                else np.empty((0, 0), dtype=np.float32)
            )
            cached = self._matrices[watchlist_id] = (subject_ids, matrix)
        return cached

    def feed(self, topic: str, key: bytes | None, value: Mapping[str, Any] | None) -> None:
        """Apply one record (topic is a contract name; ``value=None`` is a tombstone)."""
        if topic == "operations" and value is not None:
            self._window(value)
        elif topic == "watchlist":
            self._watchlist(key, value)
        elif topic == "detections" and value is not None:
            self._detection(value)
        elif topic == "adjudications" and value is not None:
            self._adjudication(value)

    def _window(self, value: Mapping[str, Any]) -> None:
        deployment_id = value["deployment_id"]
        if deployment_id not in self.windows:
            self.site_deployments[value["site_id"]].append(deployment_id)
        self.windows[deployment_id] = dict(value)
        ends = value["ends_at"]
        self._spans[deployment_id] = (
            value["status"] in _COVERING,
            frozenset(value["camera_ids"]),
            to_ms(value["starts_at"]),
            to_ms(ends) if ends is not None else None,
        )

    def _watchlist(self, key: bytes | None, value: Mapping[str, Any] | None) -> None:
        if value is None:
            if key is not None:
                watchlist_id, _, subject_id = key.decode().partition(":")
                self.watchlists[watchlist_id].pop(subject_id, None)
                self._matrices.pop(watchlist_id, None)
            return
        entries = self.watchlists[value["watchlist_id"]]
        self._matrices.pop(value["watchlist_id"], None)
        if value["op"] == "REMOVE":
            entries.pop(value["subject_id"], None)
            return
        vector = np.frombuffer(value["template"], dtype=_WIRE).astype(np.float32)
        entries[value["subject_id"]] = _Entry(
            category=value["category"],
            wanted_since_ms=to_ms(value["wanted_since"]),
            vector=_unit(vector),
        )

    def _gate(self, value: Mapping[str, Any]) -> dict[str, Any] | None:
        captured = to_ms(value["captured_at"])
        for deployment_id in self.site_deployments.get(value["site_id"], ()):
            covering, cameras, starts, ends = self._spans[deployment_id]
            if not covering or value["camera_id"] not in cameras:
                continue
            if starts <= captured and (ends is None or captured < ends):
                return self.windows[deployment_id]
        return None

    def _detection(self, value: Mapping[str, Any]) -> None:
        self.detections += 1
        window = self._gate(value)
        if window is None:
            self.gated_out += 1
            return
        counts = self.counts[window["deployment_id"]]
        counts.faces += 1
        probe = _unit(np.frombuffer(value["template"], dtype=_WIRE).astype(np.float32))
        subject_ids, matrix = self._matrix(window["watchlist_id"])
        if not subject_ids:
            return
        scores = matrix @ probe  # one float32 dot product per entry
        best = int(np.argmax(scores))
        best_subject, best_score = subject_ids[best], float(scores[best])
        if best_score < float(window["match_threshold"]):
            return
        entry = self.watchlists[window["watchlist_id"]][best_subject]
        name = f"{value['event_id']}:{window['watchlist_id']}:{best_subject}"
        aid = str(uuid.uuid5(LFR_NAMESPACE, name))
        counts.alerts.append(aid)
        self.alerts[aid] = _Alert(
            deployment_id=window["deployment_id"],
            captured_at_ms=to_ms(value["captured_at"]),
            wanted_since_ms=entry.wanted_since_ms,
            category=entry.category,
            mode=window["mode"],
        )

    def _adjudication(self, value: Mapping[str, Any]) -> None:
        previous = self.adjudications.get(value["alert_id"])
        if previous is None or to_ms(value["decided_at"]) >= to_ms(previous["decided_at"]):
            self.adjudications[value["alert_id"]] = dict(value)

    # --- results -------------------------------------------------------
    def report(self) -> list[dict[str, Any]]:
        """Rows in exactly the shape of ``lfr report --format json``."""
        windows = [w for w in self.windows.values() if w["status"] in _COVERING]
        rows = [self._row(w) for w in windows]
        rows.sort(key=lambda r: (r["date"], r["deployment_id"]))
        return rows

    def _row(self, window: Mapping[str, Any]) -> dict[str, Any]:
        deployment_id = window["deployment_id"]
        counts = self.counts.get(deployment_id, _Counts())
        tally: dict[str, int] = defaultdict(int)
        for aid in counts.alerts:
            adj = self.adjudications.get(aid)
            if adj is None:
                continue
            truth = "true" if adj["verdict"] == "TRUE_MATCH" else "false"
            tally[f"{truth}_alerts_{'confirmed' if adj['confirmed'] else 'unconfirmed'}"] += 1
            tally[adj["outcome"]] += 1
        located = self.located_ms(deployment_id)
        starts = to_ms(window["starts_at"])
        ends = window["ends_at"]
        duration_ms = to_ms(ends) - starts if ends is not None else None
        faces, arrests = counts.faces, tally["ARREST"]
        false_alerts = tally["false_alerts_confirmed"] + tally["false_alerts_unconfirmed"]
        duration_s = duration_ms / 1000 if duration_ms is not None else None
        minutes = duration_s / 60 if duration_s is not None else None
        return {
            "deployment_id": deployment_id,
            "location": window["location"],
            "date": datetime.fromtimestamp(starts // 1000, tz=UTC)
            .astimezone(self.zone)
            .date()
            .isoformat(),
            "starts_at": _iso(starts),
            "status": window["status"],
            "duration_s": duration_s,
            "use_case": window["use_case"],
            "watchlist_size": window["watchlist_size"],
            "min_threshold": window["match_threshold"],
            "total_alerts": len(counts.alerts),
            "true_alerts_confirmed": tally["true_alerts_confirmed"],
            "true_alerts_unconfirmed": tally["true_alerts_unconfirmed"],
            "false_alerts_confirmed": tally["false_alerts_confirmed"],
            "false_alerts_unconfirmed": tally["false_alerts_unconfirmed"],
            "false_alert_rate": false_alerts / faces if faces else 0.0,
            "outcome_arrest": arrests,
            "outcome_other": tally["OTHER"],
            "no_action": tally["NO_ACTION"],
            "faces_seen": faces,
            "mode": window["mode"],
            "cameras": len(window["camera_ids"]),
            "minutes_in_use": minutes,
            "minutes_per_arrest": minutes / arrests if minutes is not None and arrests else None,
            "arrest_rate": arrests / faces if faces else None,
            "median_time_to_locate_s": median([v / 1000 for v in located]) if located else None,
        }

    def located_ms(self, deployment_id: str) -> list[int]:
        """Time to locate (ms) of the deployment's confirmed true matches, in alert order."""
        located: list[int] = []
        for aid in self.counts.get(deployment_id, _Counts()).alerts:
            adj = self.adjudications.get(aid)
            if adj is not None and _locates_wanted(adj):
                located.append(to_ms(adj["located_at"]) - self.alerts[aid].wanted_since_ms)
        return located

    def located(self) -> tuple[dict[tuple[str, str], list[int]], dict[str, list[int]]]:
        """Confirmed true matches: ms from wanted_since by (mode, category), from capture."""
        by_pair: dict[tuple[str, str], list[int]] = defaultdict(list)
        response: dict[str, list[int]] = defaultdict(list)
        for aid, alert in self.alerts.items():
            adj = self.adjudications.get(aid)
            if adj is None or not _locates_wanted(adj):
                continue
            located = to_ms(adj["located_at"])
            by_pair[(alert.mode, alert.category)].append(located - alert.wanted_since_ms)
            response[alert.mode].append(located - alert.captured_at_ms)
        return by_pair, response

    def time_to_locate(self) -> dict[str, Any]:
        """Exactly the shape of ``lfr report --time-to-locate --format json``."""
        by_pair, _ = self.located()
        by_mode: dict[str, list[int]] = defaultdict(list)
        for (mode, _category), values in by_pair.items():
            by_mode[mode].extend(values)
        modes = {m: _stats(v) for m, v in sorted(by_mode.items())}
        return {
            "by_mode_category": [
                {"mode": mode, "category": category, **_stats(values)}
                for (mode, category), values in sorted(by_pair.items())
            ],
            "by_mode": [{"mode": m, **s} for m, s in modes.items()],
            "median_reduction_fixed_vs_van": _reduction(
                modes.get("FIXED_REMOTE"), modes.get("VAN"), "median_s"
            ),
        }

    def fixed_vs_van(self) -> dict[str, Any]:
        """Both reductions (median and mean) and response times (located - captured) by mode."""
        by_pair, response = self.located()
        by_mode: dict[str, list[int]] = defaultdict(list)
        for (mode, _category), values in by_pair.items():
            by_mode[mode].extend(values)
        fixed = _stats(by_mode["FIXED_REMOTE"]) if by_mode.get("FIXED_REMOTE") else None
        van = _stats(by_mode["VAN"]) if by_mode.get("VAN") else None
        return {
            "fixed_remote_median_s": fixed["median_s"] if fixed else None,
            "van_median_s": van["median_s"] if van else None,
            "median_reduction": _reduction(fixed, van, "median_s"),
            "fixed_remote_mean_s": fixed["mean_s"] if fixed else None,
            "van_mean_s": van["mean_s"] if van else None,
            "mean_reduction": _reduction(fixed, van, "mean_s"),
            "response_s": [{"mode": m, **_stats(v)} for m, v in sorted(response.items())],
        }

    def result(self, scenario: Scenario | None = None) -> dict[str, Any]:
        """The whole ground truth document (what ``truth.json`` holds)."""
        rows = self.report()
        verdicts = [self.adjudications.get(a) for a in self.alerts]
        return {
            "scenario": {"name": scenario.name, "seed": scenario.seed} if scenario else None,
            "deployments": rows,
            "time_to_locate": self.time_to_locate(),
            "fixed_vs_van": self.fixed_vs_van(),
            "totals": {
                "detections": self.detections,
                "gated_out": self.gated_out,
                "faces_seen": sum(r["faces_seen"] for r in rows),
                "alerts": len(self.alerts),
                "true_alerts": sum(1 for v in verdicts if v and v["verdict"] == "TRUE_MATCH"),
                "false_alerts": sum(1 for v in verdicts if v and v["verdict"] == "FALSE_ALERT"),
                "adjudications": len(self.adjudications),
                "orphan_adjudications": len(set(self.adjudications) - set(self.alerts)),
            },
            "alert_ids": sorted(self.alerts),
        }


def _locates_wanted(adjudication: Mapping[str, Any]) -> bool:
    """A confirmed true match with a located_at: the wanted person was found."""
    return bool(
        adjudication["verdict"] == "TRUE_MATCH"
        and adjudication["confirmed"]
        and adjudication["located_at"] is not None
    )


def _stats(values: list[int]) -> dict[str, Any]:
    seconds = [v / 1000 for v in values]
    return {
        "located": len(values),
        "mean_s": math.fsum(seconds) / len(seconds),
        "median_s": median(seconds),
        "p90_s": quantile(seconds, 0.9),
    }


def _reduction(
    fixed: Mapping[str, Any] | None, van: Mapping[str, Any] | None, key: str
) -> float | None:
    if not fixed or not van or not van[key]:
        return None
    return 1 - fixed[key] / van[key]


def ground_truth(scenario: Scenario, timezone: str = "Europe/London") -> dict[str, Any]:
    """The ground truth of ``scenario``: regenerates its records and recomputes from them."""
    from streams.simulator.events import timeline

    builder = TruthBuilder(timezone)
    for item in timeline(scenario):
        builder.feed(item.topic, item.key, item.value)
    return builder.result(scenario)
