"""What a simulation contains: sites, cameras, deployments and calibration.

A :class:`Scenario` is a pure function of its name and seed. It holds no
templates and no detections; :mod:`streams.simulator.population` adds the
people and :mod:`streams.simulator.events` the records, both from the same
seed, so the same seed always gives the same records.

Two scenarios exist:

- ``default`` -- the Croydon pilot (15 fixed cameras, mode FIXED_REMOTE, 13
  deployments from October 2025) plus four van sites (mode VAN, 4 cameras
  each, 2-4 used per deployment, 3 deployments each) and one cancelled
  deployment: about 150,000 detections.
- ``small`` -- the same shape shrunk for the end-to-end test: Croydon with 4
  fixed cameras and one van site, 3 deployments plus one cancelled, a few
  thousand detections.

Real watchlists hold 15,000-18,800 images; the simulated ones hold hundreds,
so a demo runs in minutes on two cores. Rates are scaled accordingly: what is
calibrated is the shape of the published figures (alerts per deployment,
false alerts per face, minutes per arrest, fixed vs van time to locate).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from streams.simulator.errors import UnknownScenarioError

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

FIXED_REMOTE = "FIXED_REMOTE"
VAN = "VAN"

CATEGORIES: tuple[str, ...] = (
    "wanted_by_court",
    "reasonable_grounds",
    "recall_to_prison",
    "missing",
    "vawg",
    "offensive_weapon",
    "other",
)
CATEGORY_WEIGHTS: tuple[float, ...] = (0.38, 0.12, 0.2, 0.04, 0.12, 0.09, 0.05)


@dataclass(frozen=True, slots=True)
class Site:
    """A place where detections come from; ``camera_ids`` are all its cameras."""

    site_id: str
    location: str
    mode: str
    use_case: str
    camera_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Deployment:
    """One authorised operation: its window, watchlist and expected traffic.

    Instants are epoch milliseconds (UTC). The watchlist is built at
    ``built_at_ms`` (at most 24 h before ``starts_at_ms``) and removed at
    ``removed_at_ms``. A cancelled deployment is PLANNED then CANCELLED at
    ``cancelled_at_ms`` and never becomes ACTIVE.
    """

    index: int
    deployment_id: str
    site: Site
    camera_ids: tuple[str, ...]
    watchlist_id: str
    watchlist_size: int
    threshold: float
    authorised_by: str
    authorised_at_ms: int
    built_at_ms: int
    starts_at_ms: int
    ends_at_ms: int
    activated_at_ms: int
    ended_at_ms: int
    removed_at_ms: int
    officers_present: int
    faces_per_camera_minute: float
    hits_mean: float
    cancelled_at_ms: int | None = None

    @property
    def mode(self) -> str:
        """FIXED_REMOTE or VAN, from the site."""
        return self.site.mode

    @property
    def cancelled(self) -> bool:
        """Whether the deployment was called off before it started."""
        return self.cancelled_at_ms is not None

    @property
    def minutes(self) -> float:
        """Length of the window in minutes."""
        return (self.ends_at_ms - self.starts_at_ms) / MINUTE_MS


@dataclass(frozen=True, slots=True)
class Calibration:
    """The knobs that shape the published figures (see the module docstring)."""

    population: int
    true_score_mean: float = 0.72
    true_score_sd: float = 0.095
    lookalikes_per_face: float = 1 / 8000
    lookalike_score_low: float = 0.45
    lookalike_score_high: float = 0.70
    guard_band: float = 0.002
    p_confirmed: dict[str, float] = field(default_factory=lambda: {FIXED_REMOTE: 0.9, VAN: 0.8})
    p_false_confirmed: float = 0.5
    outcome_weights: tuple[float, float, float] = (0.78, 0.13, 0.09)
    response_median_s: dict[str, float] = field(
        default_factory=lambda: {FIXED_REMOTE: 240.0, VAN: 660.0}
    )
    locate_delay_median_days: dict[str, float] = field(
        default_factory=lambda: {FIXED_REMOTE: 5.0, VAN: 16.0}
    )
    pre_window_minutes: int = 45
    post_window_minutes: int = 30
    off_window_rate_factor: float = 0.4
    burst_minutes: int = 20


@dataclass(frozen=True, slots=True)
class Scenario:
    """A complete, seeded description of one simulation."""

    name: str
    seed: int
    dim: int
    template_model: str
    start_ms: int
    sites: tuple[Site, ...]
    deployments: tuple[Deployment, ...]
    calibration: Calibration

    @property
    def active_deployments(self) -> tuple[Deployment, ...]:
        """Deployments that actually ran (not cancelled)."""
        return tuple(d for d in self.deployments if not d.cancelled)


def _epoch_ms(year: int, month: int, day: int) -> int:
    return int(datetime(year, month, day, tzinfo=UTC).timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class _SitePlan:
    site: Site
    days: tuple[int, ...]
    threshold: float
    rate: float
    cameras_used: tuple[int, int]
    hours: tuple[float, float]
    watchlist_size: tuple[int, int]
    officers: tuple[int, int]
    hits: float
    cancelled_day: int | None = None


def _cameras(prefix: str, n: int) -> tuple[str, ...]:
    return tuple(f"{prefix}-C{i:02d}" for i in range(1, n + 1))


def _deployments(
    rng: np.random.Generator, start_ms: int, plans: list[_SitePlan]
) -> tuple[Deployment, ...]:
    drafts: list[tuple[int, _SitePlan, int, bool]] = []
    for plan in plans:
        for day in plan.days:
            drafts.append((day, plan, 0, False))
        if plan.cancelled_day is not None:
            drafts.append((plan.cancelled_day, plan, 0, True))
    drafts.sort(key=lambda d: (d[0], d[1].site.site_id))
    out: list[Deployment] = []
    for index, (day, plan, _, cancelled) in enumerate(drafts):
        site = plan.site
        # switch-on is not on the minute: exercises millisecond handling downstream
        starts = (
            start_ms
            + day * DAY_MS
            + int(rng.integers(9 * HOUR_MS, 13 * HOUR_MS))
            + int(rng.integers(0, 60_000))
        )
        hours = float(rng.uniform(*plan.hours))
        ends = starts + int(hours * HOUR_MS) + int(rng.integers(0, 60_000))
        lo, hi = plan.cameras_used
        n_cams = int(rng.integers(lo, hi + 1))
        chosen = sorted(rng.choice(len(site.camera_ids), size=n_cams, replace=False).tolist())
        camera_ids = tuple(site.camera_ids[i] for i in chosen)
        built = starts - int(rng.integers(2 * HOUR_MS, 20 * HOUR_MS))
        authorised = built - int(rng.integers(1 * HOUR_MS, 4 * HOUR_MS))
        date = datetime.fromtimestamp(starts / 1000, tz=UTC).strftime("%Y%m%d")
        deployment_id = f"{site.site_id.upper()[:4]}-{date}"
        size = int(rng.integers(plan.watchlist_size[0], plan.watchlist_size[1] + 1))
        cancelled_at = starts - int(rng.integers(30 * MINUTE_MS, 90 * MINUTE_MS))
        out.append(
            Deployment(
                index=index,
                deployment_id=deployment_id,
                site=site,
                camera_ids=camera_ids,
                watchlist_id=f"WL-{deployment_id}",
                watchlist_size=size,
                threshold=plan.threshold,
                authorised_by=f"SUPT-{int(rng.integers(1000, 9999))}",
                authorised_at_ms=authorised,
                built_at_ms=built,
                starts_at_ms=starts,
                ends_at_ms=ends,
                # officers arm the window before switch-on; its interval is fixed from PLANNED on
                activated_at_ms=starts - 15 * MINUTE_MS,
                ended_at_ms=ends + 2 * MINUTE_MS,
                removed_at_ms=(cancelled_at if cancelled else ends) + 30 * MINUTE_MS,
                officers_present=int(rng.integers(plan.officers[0], plan.officers[1] + 1)),
                faces_per_camera_minute=plan.rate,
                hits_mean=plan.hits,
                cancelled_at_ms=cancelled_at if cancelled else None,
            )
        )
    return tuple(out)


def _default(seed: int) -> Scenario:
    rng = np.random.default_rng([seed, 0])
    start = _epoch_ms(2025, 10, 1)
    croydon = Site(
        "croydon", "Croydon town centre (North End)", FIXED_REMOTE, "Crime hotspot",
        _cameras("CROY", 15),
    )  # fmt: skip
    vans = [
        (Site("oxford-circus", "Oxford Circus, Westminster", VAN, "High footfall",
              _cameras("OXCI", 4)), (4, 19, 47), 0.64, 4.5, None),
        (Site("walthamstow", "Walthamstow High Street", VAN, "Crime hotspot",
              _cameras("WALT", 4)), (9, 33, 58), 0.64, 4.0, None),
        (Site("wembley", "Wembley Park (event day)", VAN, "Major event",
              _cameras("WEMB", 4)), (11, 40, 66), 0.60, 5.5, None),
        (Site("stratford", "Stratford Broadway", VAN, "Crime hotspot",
              _cameras("STRA", 4)), (15, 28, 52), 0.64, 4.0, 36),
    ]  # fmt: skip
    croydon_days = tuple(1 + round(i * 5.6) for i in range(13))
    plans = [
        _SitePlan(
            croydon, croydon_days, 0.64, 2.0, (12, 15), (3.4, 4.6), (500, 700), (6, 10), 13.5
        ),
        *(
            _SitePlan(
                site, days, threshold, rate, (2, 4), (3.5, 5.0), (350, 550), (8, 14), 11.0, cday
            )
            for site, days, threshold, rate, cday in vans
        ),
    ]
    return Scenario(
        name="default",
        seed=seed,
        dim=512,
        template_model="lfr-sim-512-v1",
        start_ms=start,
        sites=(croydon, *(v[0] for v in vans)),
        deployments=_deployments(rng, start, plans),
        calibration=Calibration(population=2200),
    )


def _small(seed: int) -> Scenario:
    rng = np.random.default_rng([seed, 0])
    start = _epoch_ms(2025, 10, 1)
    croydon = Site(
        "croydon", "Croydon town centre (North End)", FIXED_REMOTE, "Crime hotspot",
        _cameras("CROY", 4),
    )  # fmt: skip
    van = Site("walthamstow", "Walthamstow High Street", VAN, "Crime hotspot", _cameras("WALT", 3))
    plans = [
        _SitePlan(croydon, (2, 9), 0.64, 4.0, (3, 4), (0.9, 1.1), (100, 140), (6, 8), 10.0),
        _SitePlan(van, (5,), 0.60, 5.0, (2, 3), (0.9, 1.1), (80, 120), (8, 10), 10.0, 12),
    ]
    return Scenario(
        name="small",
        seed=seed,
        dim=512,
        template_model="lfr-sim-512-v1",
        start_ms=start,
        sites=(croydon, van),
        deployments=_deployments(rng, start, plans),
        # small runs see few faces: more lookalikes so that false alerts still occur
        calibration=Calibration(population=420, lookalikes_per_face=1 / 400),
    )


SCENARIOS: dict[str, Callable[[int], Scenario]] = {"default": _default, "small": _small}
DEFAULT_SEED = 20251001


def build_scenario(name: str = "default", seed: int = DEFAULT_SEED) -> Scenario:
    """The scenario called ``name`` for ``seed`` (same arguments, same scenario)."""
    try:
        factory = SCENARIOS[name]
    except KeyError:
        known = ", ".join(sorted(SCENARIOS))
        raise UnknownScenarioError(f"unknown scenario {name!r} (known: {known})") from None
    return factory(seed)
