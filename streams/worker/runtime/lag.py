"""The worker group's consumer lag per assigned input partition, as a gauge.

Lag is the end of the partition (high watermark) minus Faust's committed
offset: what a restart would have to process again or for the first time.
Updated by a timer from what the consumer already knows (no broker call).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from streams.worker import metrics

log = logging.getLogger(__name__)


def partition_lag(highwater: int | None, committed: int | None) -> int | None:
    """Records not yet committed; None until both ends are known."""
    if highwater is None or committed is None:
        return None
    return max(0, highwater - committed)


class LagGauge:
    """Keeps ``lfr_worker_consumer_lag{topic,partition}`` for the assigned input partitions."""

    def __init__(self, app: Any, topics: Iterable[str]) -> None:
        self.app = app
        self.topics = frozenset(topics)
        self._shown: set[tuple[str, str]] = set()

    def update(self) -> None:
        """Set the gauge for every assigned input partition; drop revoked ones."""
        consumer = self.app.consumer
        shown: set[tuple[str, str]] = set()
        for tp in consumer.assignment():
            if tp.topic not in self.topics:
                continue
            try:
                highwater = consumer.highwater(tp)
            except Exception as exc:  # noqa: BLE001 - e.g. revoked meanwhile: next tick
                log.debug("no high watermark for %s[%d] yet: %s", tp.topic, tp.partition, exc)
                continue
            lag = partition_lag(highwater, consumer._committed_offset.get(tp))
            if lag is None:
                continue
            labels = (tp.topic, str(tp.partition))
            metrics.CONSUMER_LAG.labels(*labels).set(lag)
            shown.add(labels)
        for labels in self._shown - shown:
            metrics.CONSUMER_LAG.remove(*labels)
        self._shown = shown
