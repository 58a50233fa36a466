"""Gating: may this detection be matched at all?

A pure function of the event and its site's windows (docs/architecture.md, invariants):
no wall clock. The optional allowed lateness is measured against the newest
``captured_at`` seen at the site, which the caller tracks per site.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from streams.worker.windows import OperationWindow


class GateReason(StrEnum):
    """Why a detection was gated out (the ``reason`` label of ``lfr_detections_gated_total``)."""

    UNKNOWN_SITE = "unknown_site"
    OUTSIDE_WINDOW = "outside_window"
    CAMERA_NOT_IN_WINDOW = "camera_not_in_window"
    TOO_LATE = "too_late"


@dataclass(frozen=True, slots=True)
class GateResult:
    """Either the window a detection falls in, or the reason it falls in none."""

    window: OperationWindow | None
    reason: GateReason | None

    @property
    def passed(self) -> bool:
        """True when the detection may be matched."""
        return self.window is not None


def gate(
    *,
    camera_id: str,
    captured_at_ms: int,
    windows: Iterable[OperationWindow],
    site_high_water_ms: int | None = None,
    allowed_lateness_ms: int | None = None,
) -> GateResult:
    """Decide whether a detection at ``captured_at_ms`` from ``camera_id`` is in a window.

    ``windows`` are all windows of the detection's site (an empty iterable
    means the site is unknown). A window covers [starts_at, ends_at) when it
    is ACTIVE or ENDED after being active, and only for its own cameras.
    With ``allowed_lateness_ms`` set, an event older than the site's newest
    ``captured_at`` (``site_high_water_ms``) minus that lateness is gated
    out; ``None`` (the default) accepts any lateness. When windows overlap,
    the one that started last wins, then the lowest deployment id, so the
    choice never depends on arrival order.
    """
    windows = list(windows)
    if not windows:
        return GateResult(None, GateReason.UNKNOWN_SITE)
    if (
        allowed_lateness_ms is not None
        and site_high_water_ms is not None
        and captured_at_ms < site_high_water_ms - allowed_lateness_ms
    ):
        return GateResult(None, GateReason.TOO_LATE)
    in_time = [w for w in windows if w.covers(captured_at_ms)]
    if not in_time:
        return GateResult(None, GateReason.OUTSIDE_WINDOW)
    candidates = [w for w in in_time if camera_id in w.camera_ids]
    if not candidates:
        return GateResult(None, GateReason.CAMERA_NOT_IN_WINDOW)
    chosen = min(candidates, key=lambda w: (-w.starts_at_ms, w.deployment_id))
    return GateResult(chosen, None)
