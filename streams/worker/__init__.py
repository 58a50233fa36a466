"""The stream worker: gating, matching, alerts and outcomes (``lfr worker``).

Where a record goes, by module: ``app`` (Faust agents) -> ``detections``
(decode, ``gating``, ``matching``, ``records``) -> Scan/Alert topics;
``watchlist`` (broadcast service over ``watchlist_store``); ``adjudications``
(the alert/adjudication join); ``source`` (dead letters). ``purge`` is the
``lfr watchlist purge`` command.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from streams.settings import Settings

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add ``lfr worker`` and ``lfr watchlist purge`` to the CLI."""
    worker = subparsers.add_parser("worker", help="Run the stream worker (Faust).")
    worker.add_argument(
        "--store", default="memory://", help="Faust table store: memory:// or rocksdb://."
    )
    worker.add_argument("--max-batch", type=int, default=500, help="Detections per batch.")
    worker.add_argument(
        "--batch-within", type=float, default=0.2, help="Seconds to wait to fill a batch."
    )
    worker.add_argument(
        "--allowed-lateness",
        type=float,
        default=None,
        help="Seconds a detection may lag the newest captured_at at its site (default: any).",
    )
    worker.add_argument(
        "--adjudication-hold",
        type=float,
        default=300.0,
        help="Seconds an adjudication waits for its alert before it is dead-lettered.",
    )
    worker.add_argument(
        "--purge-on-end",
        action="store_true",
        help="Tombstone a watchlist's entries when its last deployment ends or is cancelled.",
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

    from streams.worker.app import WorkerOptions, build_worker
    from streams.worker.metrics import BUILD_INFO

    options = WorkerOptions(
        store=args.store,
        max_batch=args.max_batch,
        batch_within_s=args.batch_within,
        allowed_lateness_s=args.allowed_lateness,
        adjudication_hold_s=args.adjudication_hold,
        purge_on_end=args.purge_on_end,
    )
    runtime = build_worker(settings, options)
    BUILD_INFO.info({"version": _version(), "app_id": settings.app_id})
    worker = faust.Worker(
        runtime.app,
        *runtime.services,
        loglevel=logging.getLogger().getEffectiveLevel(),
        redirect_stdouts=False,
    )
    worker.execute_from_commandline()
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
