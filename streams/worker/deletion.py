"""When a removed watchlist entry or a retired watchlist is physically deleted.

Matching never depends on this (an entry stays matchable for detections
captured before its removal, a retired watchlist for detections inside its
windows); only memory does. Nothing of a watchlist is deleted while no
deployment using it is known: a REMOVE or tombstone read before the window
that names the list (a replay, ``lfr publish`` of the watchlist first, a
broker restart that delivers one topic before the other) must not destroy
entries that the window's detections still need. Once a deployment is known,
templates are zeroed and dropped as soon as EITHER this worker's detections
stream has moved past the end or removal instant at every site that uses the
watchlist and whose partition it owns (plus the allowed lateness, when one
is set), OR ``grace_s`` of wall clock has passed since the worker learnt of
both the end or removal and a deployment using the list, whichever comes
first. The wall clock bounds how long a destroyed watchlist lingers; it
never decides a match inside the grace.

The grace does not run while this worker has no partitions at all (start-up
waits for the group: after a crash the dead member's session must expire
first), nor while it has more than a batch of detections waiting on one of
its partitions (a restart's backlog, a replay, watchlists published before
the detections): those detections may still need the list, and a wall-clock
grace that ran through a backlog deleted lists that 20-80% of a scenario's
alerts still needed (bench/chaos_pipeline.py on the default scenario). It
stands still for at most ``LFR_WATCHLIST_MAX_HOLD_S`` in all, so a stuck or
idle worker still frees its memory.

A site whose partition this worker does not own (or not now: start-up,
rebalance) never counts as passed: a rebalance can hand the partition over
later, behind, and its detections must still find the watchlist. So a list
used by another worker's sites goes after the grace. (After a revoke Faust
re-seeks to the committed offsets; a detection processed, acknowledged and
then redelivered may find its list deleted: its alert was already sent, the
redelivered Scan says matched=False. :meth:`StreamClock.reset` is meant for
that, but is not wired to Faust's revoke signal yet.)

Without an allowed lateness the stream-time rule assumes a site's detections
arrive roughly in ``captured_at`` order (one partition per site); a
detection later than that finds its watchlist gone and is counted in
``lfr_detections_unmatched_retired_total`` by the rule that deleted its
list (:class:`DeletionRule`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class DeletionRule(StrEnum):
    """Which rule deleted a list (``reason`` of ``lfr_detections_unmatched_retired_total``)."""

    STREAM_PASSED = "stream_passed"
    """Every owned site's stream time passed the end (a later face was out of order)."""
    GRACE_EXPIRED = "grace_expired"
    """The wall-clock grace ran out before the stream passed the end."""
    COVERED_NOTHING = "covered_nothing"
    """No window of the list ever covered a detection (cancelled, never active)."""


@dataclass(slots=True)
class StreamClock:
    """Newest ``captured_at`` per site that THIS worker has processed (memory only).

    Not the Faust ``site_clock`` table: its changelog may run ahead of the
    committed offsets after a crash, and redelivered detections must still
    find their watchlist.
    """

    newest: dict[str, int] = field(default_factory=dict)
    epoch: int = 0
    """Bumped by :meth:`reset`; a batch started in an older epoch no longer counts."""

    def advance(self, high_water: Mapping[str, int], epoch: int | None = None) -> None:
        """Take the newest ``captured_at`` per site of a batch started in ``epoch``."""
        if epoch is not None and epoch != self.epoch:
            return
        for site_id, at_ms in high_water.items():
            if at_ms > self.newest.get(site_id, at_ms - 1):
                self.newest[site_id] = at_ms

    def reset(self) -> None:
        """Forget every site's stream time (partitions revoked: offsets rewind)."""
        self.newest.clear()
        self.epoch += 1

    def at(self, site_id: str) -> int | None:
        """The site's stream time, ``None`` before its first detection."""
        return self.newest.get(site_id)


@dataclass(slots=True)
class GraceClock:
    """Wall clock for the grace that stands still while the worker owns nothing or is behind."""

    max_pause_s: float
    """Longest total time the clock stands still (``LFR_WATCHLIST_MAX_HOLD_S``)."""
    paused_s: float = 0.0
    since_s: float | None = None

    def now(self, wall_s: float, running: bool) -> float:
        """The grace clock's reading at wall-clock ``wall_s``.

        ``running`` False (no partitions, or a backlog on one) holds the clock.
        """
        if running and self.since_s is not None:
            self.paused_s += wall_s - self.since_s
            self.since_s = None
        elif not running and self.since_s is None:
            self.since_s = wall_s
        pending = 0.0 if self.since_s is None else wall_s - self.since_s
        return wall_s - min(self.paused_s + pending, self.max_pause_s)


@dataclass(frozen=True, slots=True)
class DeletionPolicy:
    """The two deletion rules of the module doc."""

    grace_s: float
    lateness_ms: int | None = None

    def due(
        self,
        *,
        at_ms: int | None,
        learnt_s: float,
        now_s: float,
        site_times: Iterable[int | None] | None,
    ) -> DeletionRule | None:
        """Whether something that ended (or was removed) at event time ``at_ms`` may go.

        Returns the rule that allows it, ``None`` while it must stay.
        ``at_ms`` None: nothing it belonged to ever covered a detection.
        ``learnt_s``: when the worker knew both the end (or removal) and a
        deployment using the list. ``site_times``: stream time of each site
        using the watchlist, ``None`` for a site this worker does not own;
        ``site_times`` itself ``None`` while the worker does not know which
        partitions it owns. An unowned site or unknown ownership leaves only
        the grace; an empty ``site_times`` (no site known) passes nothing.
        """
        if now_s - learnt_s >= self.grace_s:
            return DeletionRule.GRACE_EXPIRED
        if site_times is None:
            return None
        if at_ms is None:
            return DeletionRule.COVERED_NOTHING
        times = list(site_times)
        limit = at_ms + (self.lateness_ms or 0)
        if times and all(t is not None and t >= limit for t in times):
            return DeletionRule.STREAM_PASSED
        return None
