"""The people of a simulation: wanted subjects, their templates and watchlists.

Templates are random 512-d unit vectors (float32, L2-normalised); on the wire
they are float16. Two independent random unit vectors have a cosine of about
N(0, 1/512), so a passer-by never reaches a 0.6 threshold by chance; false
alerts come from *lookalikes*, whose template is blended with a watchlisted
one to a chosen cosine (:func:`blend`).

Subjects are located at most once: each deployment draws its *hits* (wanted
people who walk past its cameras) from subjects nobody has located yet, and
each hit's ``wanted_since`` lies some days before that deployment, longer for
van sites than for the fixed site. That is the simulated reason why fixed
cameras locate wanted people sooner: they run far more often at one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streams.simulator.scenario import (
    CATEGORIES,
    CATEGORY_WEIGHTS,
    DAY_MS,
    HOUR_MS,
    Deployment,
    Scenario,
)

WIRE_DTYPE = np.dtype("<f2")


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its L2 norm (float32)."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / norms).astype(np.float32)


def random_templates(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """``n`` random unit vectors of dimension ``dim`` (float32)."""
    return unit_rows(rng.standard_normal((n, dim), dtype=np.float32))


def blend(rng: np.random.Generator, base: np.ndarray, cosines: np.ndarray) -> np.ndarray:
    """Unit vectors whose cosine with each row of ``base`` is the matching ``cosines``.

    ``p = s*e + sqrt(1 - s^2)*u`` with ``u`` a random unit vector orthogonal
    to ``e``: exact before float16 quantisation, within ~1e-4 after it.
    """
    base = unit_rows(base)
    noise = rng.standard_normal(base.shape, dtype=np.float32)
    noise -= np.sum(noise * base, axis=1, keepdims=True) * base
    noise = unit_rows(noise)
    s = np.asarray(cosines, dtype=np.float32)[:, None]
    return unit_rows(s * base + np.sqrt(1.0 - s * s) * noise)


def to_wire(matrix: np.ndarray) -> np.ndarray:
    """Rows quantised to little-endian float16, as the wire carries them."""
    return np.ascontiguousarray(np.asarray(matrix, dtype=np.float32).astype(WIRE_DTYPE))


def from_wire(data: bytes) -> np.ndarray:
    """A float32 vector from float16 little-endian bytes."""
    return np.frombuffer(data, dtype=WIRE_DTYPE).astype(np.float32)


@dataclass(frozen=True, slots=True, eq=False)
class Population:
    """Every wanted subject of a scenario, indexed 0..n-1.

    ``templates`` are the enrolled images as float16 (the wire form);
    ``watchlists[k]`` are the subject indices on deployment ``k``'s list,
    ``hits[k]`` those who walk past its cameras while it runs.
    """

    subject_ids: tuple[str, ...]
    categories: tuple[str, ...]
    wanted_since_ms: np.ndarray
    templates: np.ndarray
    watchlists: tuple[tuple[int, ...], ...]
    hits: tuple[tuple[int, ...], ...]


def build_population(scenario: Scenario) -> Population:
    """The subjects, watchlists and hits of ``scenario`` (deterministic in its seed)."""
    cal = scenario.calibration
    rng = np.random.default_rng([scenario.seed, 1])
    n = cal.population
    subject_ids = tuple(f"SUBJ-{scenario.seed % 10_000:04d}-{i:05d}" for i in range(n))
    cat_idx = rng.choice(len(CATEGORIES), size=n, p=np.asarray(CATEGORY_WEIGHTS))
    categories = tuple(CATEGORIES[i] for i in cat_idx.tolist())
    templates = to_wire(random_templates(rng, n, scenario.dim))

    end_ms = max(d.ends_at_ms for d in scenario.deployments)
    span = end_ms - scenario.start_ms + 150 * DAY_MS
    wanted = scenario.start_ms - 150 * DAY_MS + rng.integers(0, span, size=n)
    wanted = wanted.astype(np.int64)

    # hits: drawn in deployment order from subjects not located before
    order = rng.permutation(n).tolist()
    cursor = 0
    hits: list[tuple[int, ...]] = []
    hit_at = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    for dep in scenario.deployments:
        if dep.cancelled:
            hits.append(())
            continue
        k = int(rng.poisson(dep.hits_mean))
        chosen = tuple(sorted(order[cursor : cursor + k]))
        cursor += k
        median = cal.locate_delay_median_days[dep.mode] * DAY_MS
        delays = np.maximum(rng.lognormal(np.log(median), 0.6, size=len(chosen)), 2 * DAY_MS)
        for subject, delay in zip(chosen, delays.tolist(), strict=True):
            wanted[subject] = dep.starts_at_ms - int(delay)
            hit_at[subject] = dep.starts_at_ms
        hits.append(chosen)

    watchlists: list[tuple[int, ...]] = []
    for dep, dep_hits in zip(scenario.deployments, hits, strict=True):
        watchlists.append(_watchlist(rng, dep, dep_hits, wanted, hit_at))
    return Population(
        subject_ids=subject_ids,
        categories=categories,
        wanted_since_ms=wanted,
        templates=templates,
        watchlists=tuple(watchlists),
        hits=tuple(hits),
    )


def _watchlist(
    rng: np.random.Generator,
    dep: Deployment,
    dep_hits: tuple[int, ...],
    wanted: np.ndarray,
    hit_at: np.ndarray,
) -> tuple[int, ...]:
    # wanted an hour before the list is built, and not located at an earlier deployment
    eligible = (wanted <= dep.built_at_ms - HOUR_MS) & (hit_at >= dep.starts_at_ms)
    eligible[list(dep_hits)] = False
    pool = np.flatnonzero(eligible)
    extra = max(0, min(dep.watchlist_size - len(dep_hits), pool.size))
    others = rng.choice(pool, size=extra, replace=False).tolist() if extra else []
    return tuple(sorted([*dep_hits, *others]))
