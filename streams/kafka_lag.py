"""Consumer lag of a group, from committed offsets and end offsets (kafka-python admin).

An unknown lag is not a zero: right after a broker restart the metadata can
list no partitions and the offsets can be unreadable for seconds, which once
made the probe answer 0 while tens of thousands of records waited. Whenever
a partition's end offset, or the group's offsets, cannot be read, the probe
raises :class:`LagUnknown` instead, and "caught up" waits treat it as not
caught up.

kafka-python (3.0) caches each group's coordinator in its cluster metadata and
never forgets it: once the broker that coordinated a group died, every later
offsets request of the same admin client went to the dead node, so a
"caught up" wait saw "unknown" until it timed out. After any failed read the
probe therefore starts a new admin client, which looks the coordinator up again.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from common.errors import LfrError
from common.settings import Settings

TopicPartitionLag = dict[tuple[str, int], int]

# how long one offsets request may take before the lag counts as unknown
OFFSETS_TIMEOUT_MS = 5000


class LagUnknown(LfrError):
    """The lag cannot be told now (no metadata, offsets unreadable): not caught up."""


class LagProbe:
    """Reads committed and end offsets; keeps its clients open between polls."""

    def __init__(self, settings: Settings) -> None:
        from kafka import KafkaConsumer

        self._config = settings.kafka_python_config()
        self._admin: Any = self._new_admin()  # fails early on a wrong address or password
        # no group: this consumer only asks for offsets, it never joins or commits
        self._consumer: Any = KafkaConsumer(
            **self._config, client_id="lfr-lag", enable_auto_commit=False
        )

    def _new_admin(self) -> Any:
        from kafka import KafkaAdminClient

        return KafkaAdminClient(
            **self._config, client_id="lfr-lag", request_timeout_ms=OFFSETS_TIMEOUT_MS
        )

    def group_lag(self, group: str, topics: Iterable[str]) -> TopicPartitionLag:
        """Records of ``topics`` not yet committed by ``group``, per topic-partition.

        A partition the group never committed counts from its beginning offset,
        so a group that has not started yet shows all its input as lag. Raises
        :class:`LagUnknown` when a topic's partitions or any offset cannot be read.
        """
        from kafka import TopicPartition
        from kafka.errors import KafkaError

        try:
            partitions: list[Any] = []
            for topic in topics:
                known = self._consumer.partitions_for_topic(topic)
                if not known:
                    raise LagUnknown(f"no partitions known for {topic} (metadata not ready?)")
                partitions += [TopicPartition(topic, p) for p in sorted(known)]
            if self._admin is None:
                self._admin = self._new_admin()
            committed = self._admin.list_group_offsets({group: None}).get(group, {})
            ends = self._consumer.end_offsets(partitions, timeout_ms=OFFSETS_TIMEOUT_MS)
            begins = self._consumer.beginning_offsets(partitions, timeout_ms=OFFSETS_TIMEOUT_MS)
        except KafkaError as exc:
            self._forget_coordinators()
            raise LagUnknown(f"offsets of {group} unreadable: {type(exc).__name__}: {exc}") from exc
        lag: TopicPartitionLag = {}
        for tp in partitions:
            end, begin = ends.get(tp), begins.get(tp)
            if end is None or begin is None or end < 0:
                raise LagUnknown(f"no end offset for {tp.topic}/{tp.partition}")
            meta = committed.get(tp)
            position = meta.offset if meta is not None and meta.offset >= 0 else begin
            lag[(tp.topic, tp.partition)] = max(0, end - position)
        return lag

    def committed_total(self, group: str, topics: Iterable[str]) -> int:
        """Sum of ``group``'s positions on ``topics`` (end minus lag): grows as it commits.

        Raises :class:`LagUnknown` like :meth:`group_lag`.
        """
        from kafka import TopicPartition
        from kafka.errors import KafkaError

        lag = self.group_lag(group, topics)
        partitions = [TopicPartition(t, p) for t, p in lag]
        try:
            ends = self._consumer.end_offsets(partitions, timeout_ms=OFFSETS_TIMEOUT_MS)
        except KafkaError as exc:
            raise LagUnknown(f"end offsets unreadable: {type(exc).__name__}: {exc}") from exc
        return sum(ends[TopicPartition(t, p)] - n for (t, p), n in lag.items())

    def _forget_coordinators(self) -> None:
        """Drop the admin client: the next read starts one that looks coordinators up again."""
        from kafka.errors import KafkaError

        old, self._admin = self._admin, None
        if old is not None:
            try:
                old.close()
            except KafkaError:
                pass  # closing a client whose broker is gone may fail; it is dropped anyway

    def close(self) -> None:
        """Close both clients."""
        self._consumer.close()
        if self._admin is not None:
            self._admin.close()


def group_lag(settings: Settings, group: str, topics: Iterable[str]) -> TopicPartitionLag:
    """One-shot :meth:`LagProbe.group_lag`."""
    probe = LagProbe(settings)
    try:
        return probe.group_lag(group, topics)
    finally:
        probe.close()
