"""``lfr stack up|down|status``: the local development and test stack."""

from __future__ import annotations

import argparse
import sys
import time

from streams.localstack import stack
from streams.settings import Settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``lfr stack`` and its subcommands."""
    parser = subparsers.add_parser(
        "stack",
        help="run the local Kafka, ClickHouse and Prometheus",
        description="Start, stop or inspect the local stack (state under LFR_STATE_DIR).",
    )
    actions = parser.add_subparsers(dest="stack_action", metavar="ACTION", required=True)
    start = actions.add_parser("up", help="start every service (idempotent) and wait until ready")
    start.add_argument(
        "--only",
        action="append",
        choices=["kafka", "clickhouse", "prometheus"],
        help="start only this service (repeatable)",
    )
    start.set_defaults(handler=_up)
    stop = actions.add_parser("down", help="stop every service (idempotent)")
    stop.add_argument("--purge", action="store_true", help="also delete the services' data")
    stop.set_defaults(handler=_down)
    actions.add_parser("status", help="show each service: PID, ready, endpoint").set_defaults(
        handler=_status
    )


def _up(args: argparse.Namespace, settings: Settings) -> int:
    began = time.monotonic()
    for line in stack.up(settings, args.only):
        print(line)
    print(f"stack ready in {time.monotonic() - began:.1f}s (backend: {stack.backend(settings)})")
    return 0


def _down(args: argparse.Namespace, settings: Settings) -> int:
    for line in stack.down(settings, purge=args.purge):
        print(line)
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    statuses = stack.status(settings)
    for s in statuses:
        state = "ready" if s.ready else ("starting/unhealthy" if s.pid else "stopped")
        pid = s.pid if s.pid is not None else "-"
        print(f"{s.name:<11} {state:<18} pid {pid!s:<8} {s.endpoint}  log: {s.log_file}")
    if not all(s.ready for s in statuses):
        print("not every service is ready; `lfr stack up` starts what is missing", file=sys.stderr)
        return 1
    return 0
