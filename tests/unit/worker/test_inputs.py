"""One SourceRecord from Faust's messages and aiokafka's records, whatever unit each uses."""

from __future__ import annotations

from types import SimpleNamespace

from aiokafka import ConsumerRecord
from faust.types import TP
from faust.types.tuples import Message
from hypothesis import given
from hypothesis import strategies as st

from streams.worker.runtime.inputs import DetectionsProgress, source_record
from streams.worker.source import SourceRecord

# epoch milliseconds from 2001 to 2286: every timestamp a broker writes in practice
MILLIS = st.integers(min_value=10**12, max_value=10**13 - 1)


def faust_message(timestamp_ms: int) -> Message:
    # what Faust's aiokafka driver builds from a fetched record: seconds as a float
    return Message("lfr.operations", 2, 41, timestamp_ms / 1000.0, 0, [], b"S1", b"v", None)


def aiokafka_record(timestamp_ms: int) -> ConsumerRecord:
    return ConsumerRecord("lfr.operations", 2, 41, timestamp_ms, 0, b"S1", b"v", None, 2, 1, [])


@given(MILLIS)
def test_both_clients_give_the_same_record(timestamp_ms: int) -> None:
    expected = SourceRecord("lfr.operations", 2, 41, b"S1", b"v", timestamp_ms)
    assert source_record(faust_message(timestamp_ms)) == expected
    assert source_record(aiokafka_record(timestamp_ms)) == expected


class StandInConsumer:
    """The three things DetectionsProgress reads from Faust's consumer."""

    def __init__(self, highwater: dict[int, int], committed: dict[int, int]) -> None:
        self.tps = [TP("lfr.detections", p) for p in highwater] + [TP("lfr.alerts", 0)]
        self._highwater = highwater
        self._committed_offset = {TP("lfr.detections", p): o for p, o in committed.items()}

    def assignment(self) -> list[TP]:
        return self.tps

    def highwater(self, tp: TP) -> int:
        return 10**6 if tp.topic == "lfr.alerts" else self._highwater[tp.partition]


def progress_on(consumer: StandInConsumer) -> DetectionsProgress:
    return DetectionsProgress(SimpleNamespace(consumer=consumer), "lfr.detections", slack=500)  # type: ignore[arg-type]


def batch(partition: int, first: int, count: int) -> list[SourceRecord]:
    return [
        SourceRecord("lfr.detections", partition, o, b"S", b"v", 0)
        for o in range(first, first + count)
    ]


def test_a_backlog_on_an_owned_detections_partition_is_behind_until_processed() -> None:
    consumer = StandInConsumer(highwater={0: 5000, 1: 10}, committed={0: 1000, 1: 10})
    progress = progress_on(consumer)
    assert progress.behind()  # 4,000 detections wait on partition 0
    progress.advance(batch(0, 1000, 3200))
    assert progress.behind()  # 800 still wait: more than a batch
    progress.advance(batch(0, 4200, 400))
    assert not progress.behind()  # 400 wait: within one batch (other topics never count)
    consumer._highwater[1] = 900
    assert progress.behind()  # a new backlog on the other partition


def test_nothing_processed_or_committed_yet_is_behind_only_when_records_wait() -> None:
    assert progress_on(StandInConsumer(highwater={0: 3}, committed={})).behind()
    assert not progress_on(StandInConsumer(highwater={0: 0}, committed={})).behind()


def test_a_redelivered_batch_does_not_move_progress_back() -> None:
    progress = progress_on(StandInConsumer(highwater={0: 5000}, committed={0: 0}))
    progress.advance(batch(0, 4000, 1000))
    progress.advance(batch(0, 0, 10))
    assert progress.next_offset == {0: 5000}
