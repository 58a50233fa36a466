"""Exceptions of the simulator."""

from __future__ import annotations

from common.errors import CommandError, LfrError


class SimulatorError(LfrError):
    """Base class of every error raised by ``streams.simulator``."""


class UnknownScenarioError(SimulatorError, CommandError):
    """``--scenario`` names no scenario this simulator knows."""


class OutputError(SimulatorError, CommandError):
    """The simulator cannot write its output (files or Kafka)."""
