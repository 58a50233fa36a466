"""The ``lfr`` command.

Each subcommand lives beside the code it drives: the module named in
``COMMAND_MODULES`` exposes ``register(subparsers)``, which adds its parser
and sets ``handler=<function(args, settings) -> int>`` as a default. This
file only parses the settings once, dispatches, and turns the failures a
user can act on (the project's own errors; Kafka authentication,
authorisation, TLS and unreachable brokers) into one line and exit 1;
``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import ssl
import sys
import traceback
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from common.errors import LfrError
from common.failures import kafka_failure_line, recording_client_failures
from common.settings import Settings

Handler = Callable[[argparse.Namespace, Settings], int]

COMMAND_MODULES: tuple[str, ...] = (
    "streams.localstack.cli",  # lfr stack up|down|status
    "streams.topics",  # lfr topics create
    "streams.audit",  # lfr audit retention
    "schemas.cli",  # lfr schemas check
    "streams.jsonio",  # lfr publish, lfr consume
    "streams.worker",  # lfr worker, lfr watchlist purge
    "sinks.cli",  # lfr migrate, sink, rollup, retention, report
    "streams.simulator.cli",  # lfr simulate
    "streams.demo",  # lfr demo
)

# long-running services keep the client libraries' own connection lines (rate-limited);
# a one-shot command says what went wrong in one line of its own
SERVICES = frozenset({"sink", "worker"})


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="lfr", description="lfr-stream: live facial recognition event pipeline."
    )
    parser.add_argument("--log-level", default="INFO", help="Python log level (default INFO).")
    parser.add_argument(
        "--debug", action="store_true",
        help="Show a failure's traceback and the client libraries' logs.",
    )  # fmt: skip
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name.rpartition(".")[0]) is None:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            spec = None
        if spec is None:
            continue
        module = importlib.import_module(name)
        if hasattr(module, "register"):
            module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lfr`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    # client libraries narrate every connection at INFO; keep their warnings
    for noisy in ("kafka", "aiokafka", "clickhouse_driver"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
        if not args.debug and args.command not in SERVICES:
            # a handler of their own, or logging's last resort would still print them
            logging.getLogger(noisy).addHandler(logging.NullHandler())
            logging.getLogger(noisy).propagate = False
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        settings = Settings()
    except ValidationError as exc:
        for error in exc.errors():
            # a rule across settings (SASL needs a password...) has no single field
            field = "LFR_" + "_".join(str(p) for p in error["loc"]).upper()
            where = f"setting {field}" if error["loc"] else "settings"
            print(f"lfr: invalid {where}: {error['msg']}", file=sys.stderr)
        return 2
    with recording_client_failures() as recorder:
        try:
            return handler(args, settings)
        except LfrError as exc:
            return _fail(args, str(exc))
        except KeyboardInterrupt:
            return 130
        except Exception as exc:  # only Kafka and TLS failures are the user's to fix
            line = kafka_failure_line(
                exc,
                settings.kafka_bootstrap,
                recorder.cause(),
                sasl=settings.kafka_sasl_mechanism is not None,
            )
            if line is None and isinstance(exc, ssl.SSLError):
                line = f"TLS failed: {exc}"
            if line is None:
                raise
            return _fail(args, line)


def _fail(args: argparse.Namespace, line: str) -> int:
    """One line on standard error (the traceback first with --debug); exit status 1."""
    if args.debug:
        traceback.print_exc()
    print(f"lfr: {' '.join(line.split())}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
