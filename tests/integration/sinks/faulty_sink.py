"""``lfr sink`` that SIGKILLs itself after its N-th insert, before that batch commits.

Test scaffolding only (the product carries no fault hook):
``python -m tests.integration.sinks.faulty_sink N [lfr sink options]``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import sinks.cli
from common.settings import Settings
from sinks.batching import Batch
from sinks.sink import Sink
from streams.cli import main


def killing_sink(kill_after: int) -> type[Sink]:
    """A Sink whose ``kill_after``-th insert is its last: killed before dead letters and commit."""

    class KillingSink(Sink):
        inserts = 0

        def after_insert(self, batch: Batch) -> None:
            self.inserts += 1
            if self.inserts >= kill_after:
                os.kill(os.getpid(), signal.SIGKILL)

    return KillingSink


if __name__ == "__main__":
    faulty = killing_sink(int(sys.argv[1]))

    def cmd_sink(args: argparse.Namespace, settings: Settings) -> int:
        return sinks.cli.run_sink(args, settings, faulty)

    sinks.cli.cmd_sink = cmd_sink  # register() binds the handler when the parser is built
    sys.exit(main(["sink", *sys.argv[2:]]))
