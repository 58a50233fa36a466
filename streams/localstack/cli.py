"""``lfr stack up|down|status``: the local development and test stack."""

from __future__ import annotations

import argparse
import sys
import time

from common.settings import Settings
from streams.localstack import stack
from streams.localstack.topology import Topology, stack_settings


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``lfr stack`` and its subcommands."""
    parser = subparsers.add_parser(
        "stack",
        help="run the local Kafka, ClickHouse and Prometheus",
        description=(
            "Start, stop or inspect the local stack (state under LFR_STATE_DIR). "
            "--secure and --brokers select another stack, with its own state folder "
            "under LFR_STATE_DIR and its own ports, that runs beside the plain one."
        ),
    )
    shape = argparse.ArgumentParser(add_help=False)
    shape.add_argument(
        "--secure",
        action="store_true",
        help="Kafka on SASL_SSL (SCRAM-SHA-512, ACLs) and ClickHouse on TLS, with a generated "
        "CA and passwords; state in LFR_STATE_DIR/secure, ports +100",
    )
    shape.add_argument(
        "--brokers",
        type=int,
        default=1,
        metavar="N",
        help="Kafka nodes (KRaft quorum of N; replication factor 3, min.insync.replicas 2 "
        "from N=3); state in LFR_STATE_DIR/brokers-N, ports +200",
    )
    actions = parser.add_subparsers(dest="stack_action", metavar="ACTION", required=True)
    start = actions.add_parser(
        "up", parents=[shape], help="start every service (idempotent) and wait until ready"
    )
    start.add_argument(
        "--only",
        action="append",
        choices=["kafka", "clickhouse", "prometheus"],
        help="start only this service (repeatable)",
    )
    start.set_defaults(handler=_up)
    stop = actions.add_parser("down", parents=[shape], help="stop every service (idempotent)")
    stop.add_argument("--purge", action="store_true", help="also delete the services' data")
    stop.set_defaults(handler=_down)
    actions.add_parser(
        "status", parents=[shape], help="show each service: PID, ready, endpoint"
    ).set_defaults(handler=_status)


def _selected(args: argparse.Namespace, settings: Settings) -> tuple[Topology, Settings]:
    topology = Topology(secure=args.secure, brokers=args.brokers)
    return topology, stack_settings(settings, topology)


def _up(args: argparse.Namespace, settings: Settings) -> int:
    topology, settings = _selected(args, settings)
    began = time.monotonic()
    for line in stack.up(settings, args.only, topology):
        print(line)
    took = time.monotonic() - began
    print(f"stack ready in {took:.1f}s (backend: {stack.backend(settings, topology)})")
    return 0


def _down(args: argparse.Namespace, settings: Settings) -> int:
    topology, settings = _selected(args, settings)
    for line in stack.down(settings, purge=args.purge, topology=topology):
        print(line)
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    topology, settings = _selected(args, settings)
    statuses = stack.status(settings, topology)
    for s in statuses:
        state = "ready" if s.ready else ("starting/unhealthy" if s.pid else "stopped")
        pid = s.pid if s.pid is not None else "-"
        print(f"{s.name:<11} {state:<18} pid {pid!s:<8} {s.endpoint}  log: {s.log_file}")
    if not all(s.ready for s in statuses):
        flags = f" {topology.flags}" if topology.flags else ""
        print(
            f"not every service is ready; `lfr stack up{flags}` starts what is missing",
            file=sys.stderr,
        )
        return 1
    return 0
