"""The stream worker: gating, matching, alerts and outcomes (``lfr worker``).

Where a record goes, by module: ``source`` (the input adapter: decode,
validate, key check or dead letter) -> one stage per input, each a plain
function returning a ``stage.StageResult``: ``windows`` (lfr.operations),
``detections`` (``gating``, ``matching``, ``records`` -> Scan/Alert),
``adjudications`` (the alert/adjudication join -> Outcome), ``expiry``
(when table entries go), ``reference`` (the broadcast view: ``window_view``,
``watchlist_store``, ``snapshot``, and ``deletion`` for when memory is
freed). ``runtime`` is all contact with Faust and Kafka, and says why each
of its workarounds exists. ``purge`` is the ``lfr watchlist purge`` command.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from common.settings import Settings

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add ``lfr worker`` and ``lfr watchlist purge`` to the CLI."""
    worker = subparsers.add_parser(
        "worker",
        help="Run the stream worker (Faust).",
        description="Every flag defaults to its LFR_* setting; a flag given overrides it.",
    )
    worker.add_argument("--store", default=None, help="memory:// or rocksdb:// (LFR_WORKER_STORE).")
    worker.add_argument(
        "--max-batch", type=int, default=None, help="Detections per batch (LFR_WORKER_MAX_BATCH)."
    )
    worker.add_argument(
        "--batch-within",
        type=float,
        default=None,
        help="Seconds to wait to fill a batch (LFR_WORKER_BATCH_WITHIN_S).",
    )
    worker.add_argument(
        "--allowed-lateness",
        type=float,
        default=None,
        help="Seconds a detection may lag the newest captured_at at its site "
        "(LFR_ALLOWED_LATENESS_S; unset: any).",
    )
    worker.add_argument(
        "--adjudication-hold",
        type=float,
        default=None,
        help="Seconds an adjudication waits for its alert (LFR_ADJUDICATION_HOLD_S).",
    )
    worker.add_argument(
        "--purge-on-end",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Tombstone a watchlist's entries once its last deployment ended or was cancelled "
        "and it is deleted from memory (LFR_WATCHLIST_PURGE_ON_END).",
    )
    worker.add_argument(
        "--retire-grace",
        type=float,
        default=None,
        help="Longest wall-clock seconds a removed or retired watchlist stays in memory "
        "(LFR_WATCHLIST_RETIRE_GRACE_S).",
    )
    worker.set_defaults(handler=run_worker)

    watchlist = subparsers.add_parser("watchlist", help="Watchlist maintenance.")
    actions = watchlist.add_subparsers(dest="watchlist_command", metavar="ACTION")
    purge = actions.add_parser(
        "purge", help="Tombstone every entry of a deployment's watchlist on lfr.watchlist."
    )
    purge.add_argument("--deployment", required=True, help="Deployment id.")
    purge.add_argument(
        "--force", action="store_true", help="Purge even if a live deployment uses the watchlist."
    )
    purge.set_defaults(handler=run_purge)


def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    """``lfr worker``: run until SIGTERM/SIGINT."""
    import faust

    from streams.worker.metrics import BUILD_INFO
    from streams.worker.runtime import WorkerOptions, build_worker
    from streams.worker.runtime.guard import EXIT_CODE, WorkerFailure

    options = WorkerOptions.from_settings(
        settings,
        store=args.store,
        max_batch=args.max_batch,
        batch_within_s=args.batch_within,
        allowed_lateness_s=args.allowed_lateness,
        adjudication_hold_s=args.adjudication_hold,
        purge_on_end=args.purge_on_end,
        retire_grace_s=args.retire_grace,
    )
    runtime = build_worker(settings, options)
    BUILD_INFO.info({"version": _version(), "app_id": settings.app_id})
    worker = faust.Worker(
        runtime.app,
        *runtime.services,
        loglevel=logging.getLogger().getEffectiveLevel(),
        redirect_stdouts=False,
    )
    try:
        worker.execute_from_commandline()
    except SystemExit:
        if WorkerFailure.reason is not None:
            # stopped itself after an agent failed for good: a supervisor must restart it
            return EXIT_CODE
        raise
    return 0  # pragma: no cover  (execute_from_commandline exits)


def run_purge(args: argparse.Namespace, settings: Settings) -> int:
    """``lfr watchlist purge --deployment ID``."""
    from streams.worker.purge import purge_watchlist_of

    count = purge_watchlist_of(settings, args.deployment, force=args.force)
    print(f"{count} watchlist entries tombstoned for deployment {args.deployment}")
    return 0


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lfr-stream")
    except PackageNotFoundError:
        return "unknown"
