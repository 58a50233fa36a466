"""``lfr schemas check``: fail (exit 1) when the schema files break the contract rules."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from common.settings import Settings
from schemas.check import check_schemas
from schemas.registry import SCHEMA_DIR


def register(subparsers: Any) -> None:
    """Add ``lfr schemas check`` to the ``lfr`` command."""
    parser = subparsers.add_parser("schemas", help="Data contract tools.")
    commands = parser.add_subparsers(dest="schemas_command", metavar="COMMAND", required=True)
    check = commands.add_parser(
        "check",
        help="Check docs, history and FULL compatibility of every schema version.",
    )
    check.add_argument(
        "--root",
        type=Path,
        default=SCHEMA_DIR,
        help="Folder holding <Name>.avsc and history/ (default: the installed schemas).",
    )
    check.set_defaults(handler=run_check)


def run_check(args: argparse.Namespace, settings: Settings) -> int:
    """Print every problem; 0 when there is none, 1 otherwise."""
    problems = check_schemas(args.root)
    for problem in problems:
        print(f"lfr schemas check: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"lfr schemas check: ok ({args.root})")
    return 0
