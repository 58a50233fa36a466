"""Batches depend on offsets only, so a redelivery re-forms the same batches."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sinks.batching import Message, PartitionBuffer, batch_index, bisect


def _batches(offsets: list[int], chunks: list[int], size: int) -> list[tuple[int, int, str]]:
    buffer = PartitionBuffer("t", 0, size)
    out: list[tuple[int, int, str]] = []
    i = 0
    for n in chunks + [len(offsets)]:
        for off in offsets[i : i + n]:
            buffer.add(Message(off, None, b"v", 0), now=0.0)
        i += n
        out.extend((b.first, b.last, b.token) for b in buffer.sealed)
        buffer.sealed.clear()
    return out


@given(
    st.lists(st.integers(0, 500), min_size=1, max_size=200, unique=True).map(sorted),
    st.lists(st.integers(1, 50), max_size=20),
    st.integers(1, 40),
)
def test_sealed_batches_do_not_depend_on_poll_chunking(
    offsets: list[int], chunks: list[int], size: int
) -> None:
    whole = _batches(offsets, [], size)
    assert _batches(offsets, chunks, size) == whole
    for first, last, _ in whole:
        assert batch_index(first, size) == batch_index(last, size)


def test_batch_seals_at_its_last_offset_and_on_drain() -> None:
    buffer = PartitionBuffer("scans", 2, 10)
    for off in range(5, 12):
        buffer.add(Message(off, None, b"", 0), now=0.0)
    assert [(b.first, b.last) for b in buffer.sealed] == [(5, 9)]
    assert buffer.sealed[0].token == "scans/2/5-9"
    buffer.seal_if_due(now=0.1, linger_s=5.0, caught_up=False)
    assert buffer.open is not None
    buffer.seal_if_due(now=0.1, linger_s=5.0, caught_up=True)
    assert [(b.first, b.last) for b in buffer.sealed] == [(5, 9), (10, 11)]
    assert buffer.buffered() == 7


def test_bisect_halves() -> None:
    assert bisect([1, 2, 3]) == ([1], [2, 3])
