"""Every operation window, as the broadcast consumer reads them (pure).

The detections agent gates with this view rather than with the Faust table:
the view reads every partition of lfr.operations from the beginning and is
caught up before the first detection is processed (and again before every
batch), while the table is filled by another agent, at its own pace, from
the consumer group's committed offsets. It also knows which deployments use
a watchlist, so it tells when a watchlist is retired.
"""

from __future__ import annotations

from dataclasses import dataclass

from streams.worker.windows import CLOSED_STATUSES, LIVE_STATUSES, OperationWindow, apply_window


@dataclass(frozen=True, slots=True)
class Retirement:
    """Every deployment naming ``watchlist_id`` has ENDED or been CANCELLED."""

    watchlist_id: str
    retired_at_ms: int
    """``updated_at`` of the closing window: entries not newer than this are destroyed."""
    end_ms: int | None
    """Latest ``ends_at`` of a window of this watchlist that covered anything (None: none)."""


class WindowView:
    """Windows per site (latest version per deployment) and per watchlist."""

    def __init__(self) -> None:
        self._sites: dict[str, dict[str, OperationWindow]] = {}
        self._listed: dict[str, list[OperationWindow]] = {}
        self._users: dict[str, dict[str, OperationWindow]] = {}

    def apply(self, window: OperationWindow) -> Retirement | None:
        """Apply one valid window; a :class:`Retirement` when its watchlist has no live user."""
        site = self._sites.get(window.site_id, {})
        previous = site.get(window.deployment_id)
        updated = apply_window(site, window)
        latest = updated[window.deployment_id]
        if latest is previous:
            return None  # an older version than the one held
        self._sites[window.site_id] = updated
        self._listed.pop(window.site_id, None)
        if previous is not None and previous.watchlist_id != latest.watchlist_id:
            self._users.get(previous.watchlist_id, {}).pop(latest.deployment_id, None)
        users = self._users.setdefault(latest.watchlist_id, {})
        users[latest.deployment_id] = latest
        if latest.status not in CLOSED_STATUSES:
            return None
        if any(w.status in LIVE_STATUSES for w in users.values()):
            return None
        ends = [w.ends_at_ms for w in users.values() if w.covers_anything and w.ends_at_ms]
        return Retirement(latest.watchlist_id, latest.updated_at_ms, max(ends, default=None))

    def windows_of(self, site_id: str) -> list[OperationWindow]:
        """Every window of a site (empty: the site is unknown)."""
        listed = self._listed.get(site_id)
        if listed is None:
            listed = list(self._sites.get(site_id, {}).values())
            self._listed[site_id] = listed
        return listed

    def users_of(self, watchlist_id: str) -> list[OperationWindow]:
        """The latest window of every deployment naming ``watchlist_id``."""
        return list(self._users.get(watchlist_id, {}).values())

    def sites_of(self, watchlist_id: str) -> set[str]:
        """Sites with a window that names ``watchlist_id``."""
        return {w.site_id for w in self._users.get(watchlist_id, {}).values()}

    def newest_update(self, watchlist_id: str) -> int | None:
        """Newest ``updated_at`` of a window naming ``watchlist_id``."""
        users = self._users.get(watchlist_id, {})
        return max((w.updated_at_ms for w in users.values()), default=None)

    @property
    def active_count(self) -> int:
        """Windows currently ACTIVE over all sites."""
        return sum(1 for s in self._sites.values() for w in s.values() if w.status == "ACTIVE")
