"""The records of a simulation, in event-time order.

:func:`timeline` yields :class:`TimedRecord` (event-time instant, contract
topic name, key, record) merged from three sources:

- operations and watchlist records, known up front: per deployment an
  OperationWindow PLANNED at authorisation, WatchlistEntry ADDs when the
  list is built (at most 24 h before the start), the window ACTIVE 15 minutes
  before ``starts_at`` and ENDED 2 minutes after ``ends_at`` (the interval
  ``[starts_at, ends_at)`` is the same in every version), then a REMOVE and a
  tombstone (``record=None``) per entry 30 minutes after the end; a cancelled
  deployment goes PLANNED -> CANCELLED and its list is removed the same way;
- detections, from the plans (:mod:`plan`), whose templates are made one
  deployment at a time when its first detection is due and dropped after its
  last, so memory stays bounded;
- adjudications, one per alert the simulator predicts, scheduled when the
  deployment's templates are made (they are always later than the alert's
  detection).

Ties in time are broken by topic (operations, watchlist, detections,
adjudications) and then by a sequence number, so the order is total and the
output is byte-identical for a seed.

Guard band: a gated-in face never scores within ``calibration.guard_band``
(0.002) of its window's threshold, and never has two watchlist entries at or
above ``threshold - guard_band``; offending templates are redrawn. So the
alert decisions do not depend on summation order, on whether a matcher
re-normalises the float16-decoded vectors, or on rounding scores to 6
decimals, and top-1 is never a near tie.
"""

from __future__ import annotations

import heapq
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np

from streams.simulator.errors import SimulatorError
from streams.simulator.ids import LFR_NAMESPACE, SIMULATOR_NAMESPACE
from streams.simulator.plan import HIT, LOOKALIKE, PASSER, DetectionPlan, plan_deployment
from streams.simulator.population import (
    Population,
    blend,
    build_population,
    random_templates,
    to_wire,
    unit_rows,
)
from streams.simulator.scenario import MINUTE_MS, Deployment, Scenario

OPERATIONS = "operations"
WATCHLIST = "watchlist"
DETECTIONS = "detections"
ADJUDICATIONS = "adjudications"
TOPICS: tuple[str, ...] = (OPERATIONS, WATCHLIST, DETECTIONS, ADJUDICATIONS)
"""Contract topic names, in tie-break order."""

_RANK = {name: rank for rank, name in enumerate(TOPICS)}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_REDRAWS = 50


class TimedRecord(NamedTuple):
    """One record of the simulation and the event-time instant it belongs to."""

    at_ms: int
    topic: str
    key: bytes | None
    value: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class PredictedAlert:
    """An alert the simulator expects the worker to raise (its own knowledge)."""

    alert_id: str
    event_id: str
    deployment_id: str
    captured_at_ms: int
    true_match: bool


def instant(ms: int) -> datetime:
    """An aware UTC datetime from epoch milliseconds (exact, no float rounding)."""
    return _EPOCH + timedelta(milliseconds=ms)


def alert_id(event_id: str, watchlist_id: str, subject_id: str) -> str:
    """The alert id the worker gives this match (uuid5 under the shared namespace)."""
    return str(uuid.uuid5(LFR_NAMESPACE, f"{event_id}:{watchlist_id}:{subject_id}"))


@dataclass(slots=True, eq=False)
class _Made:
    """A deployment's detections with their templates, while they are being emitted."""

    event_ids: list[str]
    wire: np.ndarray
    remaining: int


class Simulation:
    """A scenario's population, plans and records; ``records()`` may be iterated once."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.population: Population = build_population(scenario)
        self.plans: tuple[DetectionPlan, ...] = tuple(
            plan_deployment(scenario, self.population, d) for d in scenario.deployments
        )
        self.predicted_alerts: list[PredictedAlert] = []
        self._made: dict[int, _Made] = {}
        self._adjudications: list[tuple[int, int, int, dict[str, Any]]] = []
        self._adj_seq = 0

    @property
    def detection_count(self) -> int:
        """How many detections the simulation emits."""
        return sum(len(p) for p in self.plans)

    # --- static records ------------------------------------------------
    def _static(self) -> list[tuple[int, int, int, str, int, int]]:
        items: list[tuple[int, int, int, str, int, int]] = []
        ops, wl = _RANK[OPERATIONS], _RANK[WATCHLIST]
        for dep in self.scenario.deployments:
            k = dep.index
            n = len(self.population.watchlists[k])
            items.append((dep.authorised_at_ms, ops, len(items), "PLANNED", k, 0))
            items.extend((dep.built_at_ms, wl, len(items) + j, "ADD", k, j) for j in range(n))
            if dep.cancelled_at_ms is not None:
                items.append((dep.cancelled_at_ms, ops, len(items), "CANCELLED", k, 0))
            else:
                items.append((dep.activated_at_ms, ops, len(items), "ACTIVE", k, 0))
                items.append((dep.ended_at_ms, ops, len(items), "ENDED", k, 0))
            items.extend((dep.removed_at_ms, wl, len(items) + j, "REMOVE", k, j) for j in range(n))
            tomb = dep.removed_at_ms + 1000
            items.extend((tomb, wl, len(items) + j, "TOMBSTONE", k, j) for j in range(n))
        items.sort()
        return items

    def _window(self, dep: Deployment, status: str, updated_at_ms: int) -> dict[str, Any]:
        return {
            "deployment_id": dep.deployment_id,
            "site_id": dep.site.site_id,
            "location": dep.site.location,
            "use_case": dep.site.use_case,
            "mode": dep.mode,
            "camera_ids": list(dep.camera_ids),
            "watchlist_id": dep.watchlist_id,
            "watchlist_size": len(self.population.watchlists[dep.index]),
            "match_threshold": dep.threshold,
            "authorised_by": dep.authorised_by,
            "authorised_at": instant(dep.authorised_at_ms),
            "starts_at": instant(dep.starts_at_ms),
            "ends_at": instant(dep.ends_at_ms),
            "status": status,
            "officers_present": dep.officers_present,
            "updated_at": instant(updated_at_ms),
        }

    def _entry(self, dep: Deployment, j: int, op: str, updated_at_ms: int) -> dict[str, Any]:
        pop = self.population
        s = pop.watchlists[dep.index][j]
        return {
            "subject_id": pop.subject_ids[s],
            "watchlist_id": dep.watchlist_id,
            "op": op,
            "category": pop.categories[s],
            "wanted_since": instant(int(pop.wanted_since_ms[s])),
            "template": pop.templates[s].tobytes() if op != "REMOVE" else None,
            "template_model": self.scenario.template_model,
            "updated_at": instant(updated_at_ms),
        }

    def _static_record(self, item: tuple[int, int, int, str, int, int]) -> TimedRecord:
        at, _, _, kind, k, j = item
        dep = self.scenario.deployments[k]
        if kind in ("PLANNED", "ACTIVE", "ENDED", "CANCELLED"):
            key = dep.site.site_id.encode()
            return TimedRecord(at, OPERATIONS, key, self._window(dep, kind, at))
        subject_id = self.population.subject_ids[self.population.watchlists[k][j]]
        key = f"{dep.watchlist_id}:{subject_id}".encode()
        if kind == "TOMBSTONE":
            return TimedRecord(at, WATCHLIST, key, None)
        return TimedRecord(at, WATCHLIST, key, self._entry(dep, j, kind, at))

    # --- detections ----------------------------------------------------
    def _make(self, k: int) -> _Made:
        """Templates of deployment ``k``'s detections, its alerts and their adjudications."""
        sc, plan, pop = self.scenario, self.plans[k], self.population
        rng = np.random.default_rng([sc.seed, 3, k])
        n = len(plan)
        event_ids = [str(uuid.uuid5(SIMULATOR_NAMESPACE, f"{sc.name}:{sc.seed}:{k}:{i}"))
                     for i in range(n)]  # fmt: skip
        cosine = plan.cosine.copy()
        templates = np.empty((n, sc.dim), dtype=np.float32)
        passers = plan.kind == PASSER
        templates[passers] = random_templates(rng, int(passers.sum()), sc.dim)
        people = ~passers
        enrolled = pop.templates[plan.subject[people]].astype(np.float32)
        templates[people] = blend(rng, enrolled, cosine[people])
        wire = to_wire(templates)
        if not plan.deployment.cancelled:
            self._alerts(k, rng, wire, cosine, event_ids)
        return _Made(event_ids=event_ids, wire=wire, remaining=n)

    def _alerts(
        self,
        k: int,
        rng: np.random.Generator,
        wire: np.ndarray,
        cosine: np.ndarray,
        event_ids: list[str],
    ) -> None:
        sc, plan, pop = self.scenario, self.plans[k], self.population
        dep, cal = plan.deployment, sc.calibration
        members = np.asarray(pop.watchlists[k], dtype=np.int64)
        matrix = unit_rows(pop.templates[members].astype(np.float32))
        rows = np.flatnonzero(plan.in_window)
        if rows.size == 0 or members.size == 0:
            return
        t, g = dep.threshold, cal.guard_band
        for _ in range(_MAX_REDRAWS):
            scores = unit_rows(wire[rows].astype(np.float32)) @ matrix.T
            bad = (np.abs(scores - t) < g).any(axis=1) | ((scores >= t - g).sum(axis=1) > 1)
            if not bad.any():
                break
            redo = rows[bad]
            kinds = plan.kind[redo]
            fresh = np.empty((redo.size, sc.dim), dtype=np.float32)
            is_passer = kinds == PASSER
            fresh[is_passer] = random_templates(rng, int(is_passer.sum()), sc.dim)
            cosine[redo[kinds == HIT]] = np.clip(
                rng.normal(cal.true_score_mean, cal.true_score_sd, int((kinds == HIT).sum())),
                0.3,
                0.97,
            )
            cosine[redo[kinds == LOOKALIKE]] = rng.uniform(
                cal.lookalike_score_low, cal.lookalike_score_high, int((kinds == LOOKALIKE).sum())
            )
            people = redo[~is_passer]
            fresh[~is_passer] = blend(
                rng, pop.templates[plan.subject[people]].astype(np.float32), cosine[people]
            )
            wire[redo] = to_wire(fresh)
        else:
            raise SimulatorError(f"guard band not reached for deployment {dep.deployment_id}")
        top = np.argmax(scores, axis=1)
        best = scores[np.arange(rows.size), top]
        adj_rng = np.random.default_rng([sc.seed, 4, k])
        for row, col in zip(rows[best >= t].tolist(), top[best >= t].tolist(), strict=True):
            subject = int(members[col])
            true_match = bool(plan.kind[row] == HIT and plan.subject[row] == subject)
            event_id = event_ids[row]
            aid = alert_id(event_id, dep.watchlist_id, pop.subject_ids[subject])
            captured = int(plan.at_ms[row])
            self.predicted_alerts.append(
                PredictedAlert(aid, event_id, dep.deployment_id, captured, true_match)
            )
            record = _adjudication(adj_rng, sc, dep, aid, captured, true_match)
            decided = int((record["decided_at"] - _EPOCH) // timedelta(milliseconds=1))
            heapq.heappush(
                self._adjudications, (decided, _RANK[ADJUDICATIONS], self._adj_seq, record)
            )
            self._adj_seq += 1

    def _detection(self, k: int, i: int) -> TimedRecord:
        made = self._made.get(k)
        if made is None:
            made = self._made[k] = self._make(k)
        plan = self.plans[k]
        dep = plan.deployment
        at = int(plan.at_ms[i])
        record = {
            "event_id": made.event_ids[i],
            "camera_id": dep.site.camera_ids[int(plan.camera[i])],
            "site_id": dep.site.site_id,
            "captured_at": instant(at),
            "face_quality": float(plan.quality[i]),
            "template": made.wire[i].tobytes(),
            "template_model": self.scenario.template_model,
        }
        made.remaining -= 1
        if made.remaining == 0:
            del self._made[k]  # the templates of this deployment are no longer needed
        return TimedRecord(at, DETECTIONS, dep.site.site_id.encode(), record)

    def records(self) -> Iterator[TimedRecord]:
        """Every record of the simulation in event-time order."""
        static = self._static()
        at = np.concatenate([p.at_ms for p in self.plans])
        dep = np.concatenate([np.full(len(p), k) for k, p in enumerate(self.plans)])
        local = np.concatenate([np.arange(len(p)) for p in self.plans])
        order = np.lexsort((local, dep, at))
        det_at, det_k, det_i = at[order].tolist(), dep[order].tolist(), local[order].tolist()
        det_rank = _RANK[DETECTIONS]
        si, di, ns, nd = 0, 0, len(static), len(det_at)
        adj = self._adjudications
        while si < ns or di < nd or adj:
            best: tuple[int, int, int] | None = None
            source = ""
            if si < ns:
                best, source = static[si][:3], "static"
            if di < nd and (best is None or (det_at[di], det_rank, di) < best):
                best, source = (det_at[di], det_rank, di), "detection"
            if adj and (best is None or adj[0][:3] < best):
                source = "adjudication"
            if source == "static":
                yield self._static_record(static[si])
                si += 1
            elif source == "detection":
                yield self._detection(det_k[di], det_i[di])
                di += 1
            else:
                decided, _, _, record = heapq.heappop(adj)
                yield TimedRecord(decided, ADJUDICATIONS, record["alert_id"].encode(), record)


def _adjudication(
    rng: np.random.Generator,
    scenario: Scenario,
    dep: Deployment,
    aid: str,
    captured_ms: int,
    true_match: bool,
) -> dict[str, Any]:
    """An officer's verdict on one alert: engagement, outcome and when the person was found."""
    cal = scenario.calibration
    located: int | None = None
    outcome = "NONE"
    p_confirmed = cal.p_confirmed[dep.mode] if true_match else cal.p_false_confirmed
    confirmed = bool(rng.random() < p_confirmed)
    if confirmed:
        # engaged: officers reached the person (for a false alert, and found someone else)
        if true_match:
            outcome = ("ARREST", "OTHER", "NO_ACTION")[
                int(rng.choice(3, p=np.asarray(cal.outcome_weights)))
            ]
        median = cal.response_median_s[dep.mode]
        response = float(np.clip(rng.lognormal(np.log(median), 0.5), 45.0, 3 * 3600.0))
        located = captured_ms + int(response * 1000)
        decided = located + int(rng.integers(2 * MINUTE_MS, 15 * MINUTE_MS))
    else:
        decided = captured_ms + int(rng.integers(1 * MINUTE_MS, 8 * MINUTE_MS))
    return {
        "alert_id": aid,
        "officer_ref": f"OFF-{dep.site.site_id[:4].upper()}-{int(rng.integers(1, 40)):03d}",
        "verdict": "TRUE_MATCH" if true_match else "FALSE_ALERT",
        "confirmed": confirmed,
        "outcome": outcome,
        "located_at": instant(located) if located is not None else None,
        "decided_at": instant(decided),
    }


def timeline(scenario: Scenario) -> Iterator[TimedRecord]:
    """Every record of ``scenario`` in event-time order, with its instant."""
    return Simulation(scenario).records()


def generate(scenario: Scenario) -> Iterator[tuple[str, bytes | None, dict[str, Any] | None]]:
    """``(topic, key, record)`` in event-time order; ``record`` is None for a tombstone.

    ``topic`` is a contract name (``detections``, ``watchlist``,
    ``operations``, ``adjudications``); map it to ``settings.topic_<name>``.
    """
    for item in timeline(scenario):
        yield item.topic, item.key, item.value
