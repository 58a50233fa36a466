"""The report's order statistics: one definition, written once for Python and once for SQL.

- median: the middle value of the sorted values for an odd count, the mean
  ``(a + b) / 2`` of the two middle values for an even count (what numpy,
  pandas, R and Python's ``statistics.median`` give); none of no values.
- quantile at level ``p`` (p90 is ``p = 0.9``): linear interpolation between
  the closest ranks (Hyndman and Fan's type 7, numpy's and R's default):
  ``h = (n - 1) * p``, ``lo = floor(h)``, ``hi = min(lo + 1, n - 1)`` and
  ``v[lo] + (v[hi] - v[lo]) * (h - lo)`` over the sorted values ``v``
  (0-based). The median is not computed as ``quantile(0.5)``: that formula
  can differ from ``(a + b) / 2`` in the last bit.

:func:`median_sql` and :func:`quantile_sql` are the same arithmetic, in the
same order of operations, as ClickHouse expressions over a sorted array, so
a view and the report give the same double on 18.16 and on current releases.
The migration that defines the views spells them out (18.16 has no SQL
functions of one's own); a test checks that the views agree with these.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def median(values: Sequence[float]) -> float | None:
    """The median of ``values`` (need not be sorted); ``None`` for no values."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return None
    return (ordered[(n + 1) // 2 - 1] + ordered[n // 2]) / 2


def quantile(values: Sequence[float], level: float) -> float | None:
    """Linearly interpolated quantile (numpy's default) at ``level`` in [0, 1]."""
    if not 0 <= level <= 1:
        raise ValueError(f"quantile level outside [0, 1]: {level}")
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return None
    h = (n - 1) * level
    lo = math.floor(h)
    hi = min(lo + 1, n - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (h - lo)


def mean(values: Sequence[float]) -> float | None:
    """``math.fsum(values) / n``: exactly rounded, so independent of summation order."""
    return math.fsum(values) / len(values) if values else None


def median_sql(array: str, n: str) -> str:
    """:func:`median` over the sorted ClickHouse array ``array`` of length ``n`` (1-based)."""
    low = f"arrayElement({array}, intDiv({n} + 1, 2))"
    high = f"arrayElement({array}, intDiv({n}, 2) + 1)"
    return f"({low} + {high}) / 2"


def quantile_sql(array: str, n: str, level: float) -> str:
    """:func:`quantile` over the sorted ClickHouse array ``array`` of length ``n``."""
    h = f"((toInt64({n}) - 1) * {level!r})"
    lo = f"toUInt64(floor({h}))"
    low = f"arrayElement({array}, {lo} + 1)"
    high = f"arrayElement({array}, least({lo} + 2, toUInt64({n})))"
    return f"({low} + ({high} - {low}) * ({h} - floor({h})))"
