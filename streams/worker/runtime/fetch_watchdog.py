"""Rewinds a partition whose fetched records never reached its agent.

After a worker restart, faust-streaming 0.15 sometimes fetches records of
an input partition while its set of active partitions changes (table
recovery pauses and resumes partitions), then drops them before they reach
the agent: the Kafka client's position has moved past Faust's committed
offset, nothing is acknowledged or in flight for that partition, and no
code seeks back. Those records are never processed by that process and the
partition never commits again (seen in the SIGKILL end-to-end test: lag
stuck at 2-8 records per adjudications partition for minutes while every
agent idled). Upstream reports of the same family: faust-streaming #606
(commits stop on gaps) and robinhood/faust #681 (offset not committed after
a partition returns).

The watchdog looks for exactly that state, twice in a row with nothing
changing in between, and seeks the partition back to its committed offset
so the records are fetched again. At-least-once is preserved: the records
were never delivered, and a redelivery is harmless anyway (deterministic ids,
idempotent sink). The decision is a pure function (:func:`stalled`), tested
without a broker; :class:`FetchWatchdog` only gathers Faust's state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from streams.worker import metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PartitionState:
    """What Faust and the Kafka client say of one assigned partition."""

    committed: int | None
    position: int | None
    acked: int
    in_flight: int


def stalled(state: PartitionState) -> bool:
    """Records were fetched past the commit, yet none is acknowledged or in flight."""
    if state.committed is None or state.position is None:
        return False
    return state.position > state.committed and state.acked == 0 and state.in_flight == 0


class FetchWatchdog:
    """Checks the given topics' partitions each tick; rewinds the ones stalled twice alike."""

    def __init__(self, app: Any, topics: Iterable[str]) -> None:
        self.app = app
        self.topics = frozenset(topics)
        self._suspects: dict[Any, PartitionState] = {}
        for topic in sorted(self.topics):  # a series from the start: increase() sees the first
            metrics.FETCH_REWINDS.labels(topic=topic)

    async def tick(self) -> list[Any]:
        """One check; returns the partitions it rewound."""
        app = self.app
        if getattr(app, "rebalancing", False) or not app.flow_control.is_active():
            self._suspects.clear()  # a rebalance seeks every partition anyway
            return []
        consumer = app.consumer
        in_flight = _count_by_tp(m.tp for m in list(consumer._unacked_messages))
        states: dict[Any, PartitionState] = {}
        for tp in consumer.assignment():
            if tp.topic not in self.topics:
                continue
            states[tp] = PartitionState(
                committed=consumer._committed_offset.get(tp),
                position=await consumer.position(tp),
                acked=len(consumer._acked.get(tp) or ()),
                in_flight=in_flight.get(tp, 0),
            )
        rewound = []
        for tp, state in states.items():
            if not stalled(state):
                continue
            if self._suspects.get(tp) == state and state.committed is not None:
                log.warning(
                    "%s[%d]: records %d..%d were fetched but never reached the agent; "
                    "seeking back to the committed offset",
                    tp.topic, tp.partition, state.committed, (state.position or 0) - 1,
                )  # fmt: skip
                await consumer.seek(tp, state.committed)
                metrics.FETCH_REWINDS.labels(topic=tp.topic).inc()
                rewound.append(tp)
        self._suspects = {tp: s for tp, s in states.items() if stalled(s) and tp not in rewound}
        return rewound


def _count_by_tp(tps: Iterable[Any]) -> Mapping[Any, int]:
    counts: dict[Any, int] = {}
    for tp in tps:
        counts[tp] = counts.get(tp, 0) + 1
    return counts
