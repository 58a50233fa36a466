"""``lfr simulate``: run a seeded scenario to files, to Kafka, or just its ground truth.

::

    lfr simulate [--seed N] [--scenario default|small] [--out DIR] [--to-kafka]
                 [--speed S] [--max-gap SECONDS]

``--out DIR`` writes ``detections.jsonl``, ``watchlist.jsonl``,
``operations.jsonl``, ``adjudications.jsonl`` (for ``lfr publish``) and
``truth.json``. ``--to-kafka`` publishes the same records, in event-time
order, to the topics named by the settings. Either way the ground truth is
computed from the very records written, in the same pass, and its headline
figures are printed.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from common.settings import Settings
from streams.simulator.events import Simulation, TimedRecord
from streams.simulator.files import JsonlWriter, write_truth
from streams.simulator.scenario import DEFAULT_SEED, SCENARIOS, build_scenario
from streams.simulator.truth import TruthBuilder


def register(subparsers: Any) -> None:
    """Add ``lfr simulate`` to the ``lfr`` command."""
    parser = subparsers.add_parser(
        "simulate", help="Generate a seeded multi-site scenario and its ground truth."
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="Random seed.")
    parser.add_argument(
        "--scenario", choices=sorted(SCENARIOS), default="default", help="Scenario to run."
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="Write JSON-lines files and truth.json here."
    )
    parser.add_argument(
        "--to-kafka", action="store_true", help="Publish the records to the Kafka topics."
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=0.0,
        help="Event-time seconds per wall-clock second when publishing (0: unpaced).",
    )
    parser.add_argument(
        "--max-gap",
        type=float,
        default=1.0,
        help="Longest wall-clock wait between two paced records, seconds (default 1).",
    )
    parser.set_defaults(handler=simulate_command)


def _observed(
    records: Iterator[TimedRecord], observers: list[Callable[[TimedRecord], None]]
) -> Iterator[TimedRecord]:
    for item in records:
        for observe in observers:
            observe(item)
        yield item


def simulate_command(args: argparse.Namespace, settings: Settings) -> int:
    """Handler of ``lfr simulate``."""
    scenario = build_scenario(args.scenario, args.seed)
    simulation = Simulation(scenario)
    truth = TruthBuilder()
    observers: list[Callable[[TimedRecord], None]] = [
        lambda item: truth.feed(item.topic, item.key, item.value)
    ]
    with ExitStack() as stack:
        writer: JsonlWriter | None = None
        if args.out is not None:
            writer = stack.enter_context(JsonlWriter(args.out))
            observers.append(writer.write)
        records = _observed(simulation.records(), observers)
        if args.to_kafka:
            from streams.simulator.kafka_out import publish

            counts = publish(records, settings, speed=args.speed, max_gap_s=args.max_gap)
            print(f"published: {counts}")
        else:
            for _ in records:
                pass
    result = truth.result(scenario)
    if args.out is not None:
        path = write_truth(result, args.out)
        print(f"wrote {args.out}/*.jsonl and {path}")
    for line in summary(result):
        print(line)
    return 0


def summary(truth: dict[str, Any]) -> list[str]:
    """Headline figures of a ground truth document, one line each."""
    rows = truth["deployments"]
    totals = truth["totals"]
    lines = [
        f"scenario {truth['scenario']['name']} seed {truth['scenario']['seed']}: "
        f"{totals['detections']} detections, {totals['faces_seen']} faces seen, "
        f"{totals['gated_out']} outside any window, {totals['alerts']} alerts "
        f"({totals['false_alerts']} false)"
    ]
    for mode in sorted({r["mode"] for r in rows}):
        mine = [r for r in rows if r["mode"] == mode]
        faces = sum(r["faces_seen"] for r in mine)
        alerts = sum(r["total_alerts"] for r in mine)
        false = sum(r["false_alerts_confirmed"] + r["false_alerts_unconfirmed"] for r in mine)
        arrests = sum(r["outcome_arrest"] for r in mine)
        minutes = sum(r["minutes_in_use"] for r in mine)
        per_arrest = f"{minutes / arrests:.1f}" if arrests else "n/a"
        lines.append(
            f"{mode}: {len(mine)} deployments, {faces} faces, {alerts / len(mine):.1f} alerts "
            f"per deployment, {false} false ({false / faces if faces else 0:.2e} per face), "
            f"{arrests} arrests, one every {per_arrest} minutes in use"
        )
    fvv = truth["fixed_vs_van"]
    if fvv["median_reduction"] is not None:
        lines.append(
            "time to locate, FIXED_REMOTE vs VAN: median "
            f"{fvv['fixed_remote_median_s'] / 86400:.1f} vs {fvv['van_median_s'] / 86400:.1f} "
            f"days ({fvv['median_reduction']:.0%} lower), mean "
            f"{fvv['fixed_remote_mean_s'] / 86400:.1f} vs {fvv['van_mean_s'] / 86400:.1f} "
            f"days ({fvv['mean_reduction']:.0%} lower)"
        )
    return lines
