"""What a ClickHouse server supports, decided from its version alone.

The schema runs on every server from 18.16 (Debian, CI) to current releases
(chDB in tests, 24+ in production); a feature is rendered only where the
server is known to have it. The thresholds are conservative: a later version
than strictly needed costs nothing but the optimisation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Version = tuple[int, ...]

# LowCardinality is experimental (behind a setting) on 18.x.
LOW_CARDINALITY_SINCE: Version = (20, 1)
# Table TTL arrived in 19.6; 20.1 is the first release where it is routinely used.
TTL_SINCE: Version = (20, 1)
# insert_deduplication_token (and non_replicated_deduplication_window for plain MergeTree).
DEDUP_TOKEN_SINCE: Version = (22, 2)


def parse_version(text: str) -> Version:
    """``"18.16.1"`` or ``"26.9.2.1"`` as a tuple of ints."""
    parts = re.findall(r"\d+", text)
    if not parts:
        raise ValueError(f"not a ClickHouse version: {text!r}")
    return tuple(int(p) for p in parts)


@dataclass(frozen=True)
class ServerFeatures:
    """The optional features the DDL and the sink may use on one server."""

    version: Version
    low_cardinality: bool
    ttl: bool
    dedup_token: bool

    @property
    def version_text(self) -> str:
        """The version as dotted text."""
        return ".".join(str(p) for p in self.version)


def features_for(version: Version | str) -> ServerFeatures:
    """The features of a server of this version."""
    v = parse_version(version) if isinstance(version, str) else version
    return ServerFeatures(
        version=v,
        low_cardinality=v >= LOW_CARDINALITY_SINCE,
        ttl=v >= TTL_SINCE,
        dedup_token=v >= DEDUP_TOKEN_SINCE,
    )
