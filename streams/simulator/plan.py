"""Who passes which camera when: the detection plan of each deployment.

A plan is cheap (times, cameras, kinds; no templates), so the whole
scenario's plan is built up front and sorted into event-time order; the
templates are made later, one deployment at a time (:mod:`events`).

Besides the faces inside a window, every deployment has faces that must
leave no trace, each a test of gating: before switch-on (while the window is
PLANNED, and while ACTIVE but before ``starts_at``), after ``ends_at``,
exactly at ``ends_at`` (the interval is half-open), one millisecond before
``starts_at``, at cameras of the site that are not in the window, and a
burst a day later. Watchlisted people are among them (*near misses*): if the
gate leaked they would raise alerts the ground truth does not have.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streams.simulator.population import Population
from streams.simulator.scenario import DAY_MS, MINUTE_MS, Deployment, Scenario

PASSER = 0
HIT = 1
LOOKALIKE = 2
NEAR_MISS = 3

NEAR_MISS_COSINE = 0.85
"""Near misses score well above any threshold: a leak in the gate would show."""


@dataclass(frozen=True, slots=True, eq=False)
class DetectionPlan:
    """The detections of one deployment (and around it), sorted by time.

    Arrays of equal length: ``at_ms`` capture instant, ``camera`` index into
    the site's cameras, ``kind`` (PASSER, HIT, LOOKALIKE, NEAR_MISS),
    ``subject`` (population index, -1 for a passer-by), ``cosine`` (target
    cosine with the subject's enrolled template), ``quality`` (face quality),
    ``in_window`` (the planner's own view of gating; the ground truth
    recomputes it from the records).
    """

    deployment: Deployment
    at_ms: np.ndarray
    camera: np.ndarray
    kind: np.ndarray
    subject: np.ndarray
    cosine: np.ndarray
    quality: np.ndarray
    in_window: np.ndarray

    def __len__(self) -> int:
        return int(self.at_ms.size)


class _Builder:
    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(
        self,
        at: np.ndarray,
        camera: np.ndarray,
        kind: int,
        subject: np.ndarray,
        cosine: np.ndarray,
        in_window: bool,
    ) -> None:
        n = at.size
        self.parts.append(
            (
                at.astype(np.int64),
                camera.astype(np.int32),
                np.full(n, kind, dtype=np.int8),
                subject.astype(np.int32),
                cosine.astype(np.float32),
                np.full(n, in_window, dtype=bool),
            )
        )


def _passers(
    b: _Builder,
    rng: np.random.Generator,
    lo: int,
    hi: int,
    cams: np.ndarray,
    rate: float,
    in_window: bool,
) -> int:
    if hi <= lo or cams.size == 0:
        return 0
    n = int(rng.poisson(rate * cams.size * (hi - lo) / MINUTE_MS))
    at = rng.integers(lo, hi, size=n)
    b.add(at, rng.choice(cams, size=n), PASSER, np.full(n, -1), np.zeros(n), in_window)
    return n


def _near(
    b: _Builder, rng: np.random.Generator, at: int, cams: np.ndarray, members: tuple[int, ...]
) -> None:
    if cams.size == 0 or not members:
        return
    subject = np.asarray([members[int(rng.integers(len(members)))]])
    b.add(
        np.asarray([at]),
        np.asarray([cams[int(rng.integers(cams.size))]]),
        NEAR_MISS,
        subject,
        np.asarray([NEAR_MISS_COSINE]),
        False,
    )


def _busy(scenario: Scenario, site_id: str, lo: int, hi: int) -> bool:
    cal = scenario.calibration
    for d in scenario.deployments:
        if d.site.site_id != site_id:
            continue
        if lo < d.ends_at_ms + cal.post_window_minutes * MINUTE_MS and hi > (
            d.built_at_ms - cal.pre_window_minutes * MINUTE_MS
        ):
            return True
    return False


def plan_deployment(scenario: Scenario, population: Population, dep: Deployment) -> DetectionPlan:
    """The detection plan of ``dep`` (deterministic in the scenario's seed)."""
    cal = scenario.calibration
    rng = np.random.default_rng([scenario.seed, 2, dep.index])
    site_cams = dep.site.camera_ids
    window = np.asarray([site_cams.index(c) for c in dep.camera_ids], dtype=np.int32)
    others = np.asarray(
        [i for i, c in enumerate(site_cams) if c not in dep.camera_ids], dtype=np.int32
    )
    every = np.arange(len(site_cams), dtype=np.int32)
    members = population.watchlists[dep.index]
    off_rate = dep.faces_per_camera_minute * cal.off_window_rate_factor
    pre = dep.starts_at_ms - cal.pre_window_minutes * MINUTE_MS
    post = dep.ends_at_ms + cal.post_window_minutes * MINUTE_MS
    b = _Builder()

    if dep.cancelled:
        # the would-be window: a cancelled window covers nothing
        _passers(b, rng, dep.starts_at_ms, dep.ends_at_ms, every, off_rate, False)
        cancelled_at = dep.cancelled_at_ms or dep.starts_at_ms
        _near(b, rng, (dep.built_at_ms + cancelled_at) // 2, every, members)
        _near(b, rng, dep.starts_at_ms + 10 * MINUTE_MS, every, members)
    else:
        n_in = _passers(
            b, rng, dep.starts_at_ms, dep.ends_at_ms, window, dep.faces_per_camera_minute, True
        )
        # exactly at switch-on: inside the half-open interval
        b.add(
            np.asarray([dep.starts_at_ms]), window[:1], PASSER, np.asarray([-1]),
            np.zeros(1), True,
        )  # fmt: skip
        hits = np.asarray(population.hits[dep.index], dtype=np.int32)
        cos = rng.normal(cal.true_score_mean, cal.true_score_sd, size=hits.size)
        b.add(
            rng.integers(dep.starts_at_ms, dep.ends_at_ms, size=hits.size),
            rng.choice(window, size=hits.size),
            HIT,
            hits,
            np.clip(cos, 0.3, 0.97),
            True,
        )
        n_look = int(rng.poisson(n_in * cal.lookalikes_per_face))
        if n_look and members:
            b.add(
                rng.integers(dep.starts_at_ms, dep.ends_at_ms, size=n_look),
                rng.choice(window, size=n_look),
                LOOKALIKE,
                rng.choice(np.asarray(members), size=n_look),
                rng.uniform(cal.lookalike_score_low, cal.lookalike_score_high, size=n_look),
                True,
            )
        _passers(b, rng, pre, dep.starts_at_ms, every, off_rate, False)
        _passers(b, rng, dep.ends_at_ms, post, every, off_rate, False)
        _passers(b, rng, dep.starts_at_ms, dep.ends_at_ms, others, off_rate, False)
        _near(b, rng, (dep.built_at_ms + dep.activated_at_ms) // 2, every, members)
        _near(b, rng, (dep.activated_at_ms + dep.starts_at_ms) // 2, window, members)
        _near(b, rng, dep.starts_at_ms - 1, window, members)
        _near(b, rng, dep.ends_at_ms, window, members)
        _near(b, rng, (dep.starts_at_ms + dep.ends_at_ms) // 2, others, members)
        burst = dep.ends_at_ms + DAY_MS
        burst_end = burst + cal.burst_minutes * MINUTE_MS
        if not _busy(scenario, dep.site.site_id, burst, burst_end):
            _passers(b, rng, burst, burst_end, every, off_rate, False)
            _near(b, rng, burst + MINUTE_MS, every, members)

    at, camera, kind, subject, cosine, in_window = (
        np.concatenate([p[i] for p in b.parts]) for i in range(6)
    )
    order = np.lexsort((np.arange(at.size), at))
    quality = _quality(rng, kind[order], cosine[order], cal.true_score_mean, cal.true_score_sd)
    return DetectionPlan(
        deployment=dep,
        at_ms=at[order],
        camera=camera[order],
        kind=kind[order],
        subject=subject[order],
        cosine=cosine[order],
        quality=quality,
        in_window=in_window[order],
    )


def _quality(
    rng: np.random.Generator, kind: np.ndarray, cosine: np.ndarray, mean: float, sd: float
) -> np.ndarray:
    # a sharper face scores closer to its enrolment image: tie quality to the true-match cosine
    base = rng.normal(0.72, 0.12, size=kind.size)
    z = (cosine - mean) / sd
    tied = 0.72 + 0.1 * z + rng.normal(0.0, 0.04, size=kind.size)
    quality = np.where(kind == HIT, tied, base)
    return np.round(np.clip(quality, 0.25, 0.99), 3)
