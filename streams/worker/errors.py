"""Exceptions of the stream worker.

Each class carries ``reason``, the ``DeadLetterReason`` symbol that a dead
letter gets when this error rejects a record (the same convention as
``schemas.errors``). Messages name ids and sizes, never template bytes or raw
subject ids.
"""

from __future__ import annotations

from common.errors import CommandError, LfrError


class WorkerError(LfrError):
    """Base class of every error raised by ``streams.worker``."""

    reason: str = "other"


class InvalidWindowError(WorkerError):
    """An operation window that must not be used (e.g. ACTIVE without an authoriser)."""

    reason = "invalid"


class InvalidRecordError(WorkerError):
    """A record that decodes but cannot be used (null value, key not its id...)."""

    reason = "invalid"


class EntryOutsideBuildPeriodError(WorkerError):
    """A watchlist template written more than 24 h before its deployment starts, or after it ended.

    A watchlist is built for a deployment (at most 24 h before it) and
    destroyed when it ends; a template outside that period is refused.
    """

    reason = "invalid"


class UnknownSiteError(WorkerError):
    """A detection for a site that has no operation window at all."""

    reason = "unknown_site"


class UnknownWatchlistError(WorkerError):
    """A gated-in detection whose window names a watchlist this worker does not hold."""

    reason = "unknown_watchlist"


class DimensionMismatchError(WorkerError):
    """A template whose dimension or model differs from its watchlist's."""

    reason = "dimension_mismatch"


class OrphanAdjudicationError(WorkerError):
    """An adjudication whose alert did not arrive within the hold time."""

    reason = "orphan_adjudication"


class PurgeError(CommandError):
    """``lfr watchlist purge`` cannot proceed (unknown deployment, live window...)."""
