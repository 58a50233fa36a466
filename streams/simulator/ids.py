"""Namespaces of the deterministic ids the simulator makes.

``LFR_NAMESPACE`` is the worker's (``streams.worker.records``): alert ids
must be computed exactly as the worker computes them, so there is one
definition and it lives with the worker.
"""

from __future__ import annotations

import uuid

from streams.worker.records import LFR_NAMESPACE

SIMULATOR_NAMESPACE = uuid.UUID("5b0f7c52-3a43-4f43-9d0e-2f4f2f8a7d11")
"""uuid5 namespace of simulated detection event ids."""

__all__ = ["LFR_NAMESPACE", "SIMULATOR_NAMESPACE"]
