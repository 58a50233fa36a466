"""One SourceRecord from Faust's messages and aiokafka's records, whatever unit each uses."""

from __future__ import annotations

from aiokafka import ConsumerRecord
from faust.types.tuples import Message
from hypothesis import given
from hypothesis import strategies as st

from streams.worker.runtime.inputs import source_record
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
