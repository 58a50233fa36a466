"""Roll markers: make the compacted personal topics close their last segment on time.

Kafka compacts closed segments only, and a segment closes on the first
append after it is ``segment.ms`` old. A watchlist purged at a deployment's
end, or an alerts-table changelog whose last deletes were the day's last
writes, would otherwise keep the templates and alerts that its tombstones
delete for as long as nothing else is written. So the leader worker
appends a tombstone under a reserved key (:func:`streams.topics.roll_marker_key`,
which names no person and matches no entry) to every partition of those
topics every half ``LFR_TOPIC_SEGMENT_MS``; the segment then closes within
1.5 x ``segment.ms`` and the cleaner compacts it within
``max.compaction.lag.ms``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

import faust

from common.settings import Settings
from streams.topics import roll_marker_key, roll_marker_topics

log = logging.getLogger(__name__)


def roll_interval_s(settings: Settings) -> float:
    """Seconds between two rounds of markers: half the segment roll interval."""
    return max(0.5, settings.topic_segment_ms / 2000)


async def roll_segments(app: faust.App, settings: Settings) -> None:
    """Append one roll marker to each partition of the compacted personal topics."""
    futures: list[Awaitable] = []
    for name, partitions in roll_marker_topics(settings):
        for partition in range(partitions):
            futures.append(
                await app.producer.send(
                    name, roll_marker_key(partition), None, partition, None, None
                )
            )
    await asyncio.gather(*futures)
    log.debug("roll markers appended to %d partitions", len(futures))
