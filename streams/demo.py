"""``lfr demo``: the Croydon pilot end to end on the real local stack.

Brings up the stack, creates topics, migrates ClickHouse, starts a worker and
a sink, publishes the simulated scenario with a progress bar, waits until
both have committed everything, rolls up, prints the per-deployment table and
the fixed-vs-van time-to-locate comparison, checks both against the
simulator's own ground truth, and writes the HTML report with its charts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess  # noqa: S404 - runs the project's own commands
import sys
import time
from pathlib import Path
from typing import Any

from common.errors import CommandError
from common.settings import Settings
from streams.pipeline import Pipeline


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``lfr demo``."""
    parser = subparsers.add_parser(
        "demo", help="simulate the Croydon pilot end to end and print the report",
        description=__doc__,
    )  # fmt: skip
    parser.add_argument("--scenario", default="default", help="default or small")
    parser.add_argument("--seed", type=int, default=None, help="scenario seed")
    parser.add_argument("--keep", action="store_true",
                        help="leave the stack, the worker and the sink running")  # fmt: skip
    parser.set_defaults(handler=run_demo)


def lfr(settings: Settings, *args: str, capture: bool = False) -> str:
    """Run an ``lfr`` subcommand with ``settings``; raise CommandError on failure."""
    result = subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "streams.cli", *args],
        env={**os.environ, **settings.to_env()},
        capture_output=capture, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        detail = (result.stderr or "").strip().splitlines()[-1:] if capture else []
        raise CommandError(f"`lfr {' '.join(args)}` failed {' '.join(detail)}".strip())
    return result.stdout if capture else ""


def publish_scenario(
    settings: Settings, scenario_name: str, seed: int | None, show_progress: bool = True
) -> dict[str, Any]:
    """Publish the scenario to Kafka in event-time order; return its ground truth."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from streams.simulator.events import DETECTIONS, Simulation, TimedRecord
    from streams.simulator.kafka_out import publish
    from streams.simulator.scenario import DEFAULT_SEED, build_scenario
    from streams.simulator.truth import TruthBuilder

    scenario = build_scenario(scenario_name, DEFAULT_SEED if seed is None else seed)
    simulation = Simulation(scenario)
    truth = TruthBuilder(settings.report_timezone)
    with Progress(
        "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
        TimeRemainingColumn(), disable=not show_progress,
    ) as progress:  # fmt: skip
        task = progress.add_task("publishing detections", total=simulation.detection_count)

        def observe(item: TimedRecord) -> None:
            truth.feed(item.topic, item.key, item.value)
            if item.topic == DETECTIONS:
                progress.advance(task)

        publish(simulation.records(), settings, progress=observe)
    return truth.result(scenario)


def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Handler of ``lfr demo``."""
    from pydantic import SecretStr

    from streams.localstack import stack
    from streams.localstack.clickhouse import LOCAL_ROLE_LOGINS

    if settings.pseudonym_key is None:
        # simulated people only: the worker may use the known development key
        settings = settings.model_copy(update={"allow_dev_pseudonym_key": True})
    if stack.backend(settings) == "local" and not settings.clickhouse_ingest_user:
        # the sink writes as the insert-only user, the report reads as the analyst
        settings = settings.model_copy(update={
            k: SecretStr(v) if k.endswith("password") else v for k, v in LOCAL_ROLE_LOGINS.items()
        })  # fmt: skip
    began = time.monotonic()
    print("== starting the local stack")
    for line in stack.up(settings):
        print("  " + line)
    print("== topics and ClickHouse schema")
    lfr(settings, "topics", "create")
    lfr(settings, "migrate", "--wait", "60")
    logs = settings.state_dir.resolve() / "logs"
    pipeline = Pipeline(settings, logs)
    try:
        print("== starting the worker and the sink")
        pipeline.start("worker")
        pipeline.start("sink")
        pipeline.wait_ready("worker")
        pipeline.wait_ready("sink")
        print(f"== publishing the {args.scenario!r} scenario")
        truth = publish_scenario(settings, args.scenario, args.seed)
        print("== waiting for the worker and the sink to catch up")
        pipeline.wait_caught_up(timeout_s=900)
        lfr(settings, "rollup", capture=True)
        print("== per-deployment report (ClickHouse)")
        lfr(settings, "report")
        print("== time to locate (ClickHouse)")
        lfr(settings, "report", "--time-to-locate")
        got = json.loads(lfr(settings, "report", "--format", "json", capture=True))
        state_dir = settings.state_dir.resolve()
        truth_path = state_dir / "demo-truth.json"
        truth_path.write_text(json.dumps(truth, indent=2, default=str))
        expected = [r for r in truth["deployments"]]
        verdict = "equals" if got == expected else "DIFFERS FROM"
        print(f"== the report {verdict} the simulator's ground truth ({truth_path})")
        page = state_dir / "report.html"
        lfr(settings, "report", "--format", "html", "--out", str(page), capture=True)
        print(f"== HTML report (table and charts, opens offline in a browser): {page}")
    finally:
        if not args.keep:
            pipeline.stop()
    took = time.monotonic() - began
    print(f"== done in {took / 60:.1f} min")
    _print_next_steps(settings, args.keep, logs)
    if not args.keep:
        stack.down(settings)
    return 0 if got == expected else 1


def _print_next_steps(settings: Settings, keep: bool, logs: Path) -> None:
    s = settings
    example = "'SELECT * FROM deployment_metrics FORMAT PrettyCompact'"
    print(f"""
Query the results:
  clickhouse-client --port {s.clickhouse_port} --database {s.clickhouse_database} \\
      --query {example}
  lfr report --format csv        lfr report --time-to-locate
  (docs/analysts.md describes every table and view)
Prometheus: http://127.0.0.1:{s.prometheus_port} (worker :{s.worker_metrics_port}/metrics, \
sink :{s.sink_metrics_port}/metrics)
Logs: {logs}/""")
    if keep:
        print(
            "The stack, worker and sink keep running (--keep); stop the stack with "
            "`lfr stack down` and the worker/sink with `pkill -f 'streams.cli (worker|sink)'`."
        )
    else:
        print("Run `lfr demo --keep` to leave everything running.")
