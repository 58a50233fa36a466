"""Deterministic batches per topic-partition: pure bookkeeping, no I/O.

A batch holds the offsets ``[k * size, (k + 1) * size)`` of one partition
(fewer when the partition ends or the batch lingers too long). Because the
boundaries depend on offsets alone, a redelivery after a crash re-forms the
same batch, so its insert_deduplication_token
(``topic/partition/first-last``) repeats and the server drops the copy.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


def batch_index(offset: int, size: int) -> int:
    """The batch an offset belongs to."""
    return offset // size


@dataclass(slots=True)
class Message:
    """One consumed record, kept raw until its batch is flushed."""

    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


@dataclass
class Batch:
    """Consecutive messages of one partition within one offset window."""

    topic: str
    partition: int
    index: int
    opened_at: float
    messages: list[Message] = field(default_factory=list)
    attempts: int = 0
    retry_at: float = 0.0

    @property
    def first(self) -> int:
        """First offset in the batch."""
        return self.messages[0].offset

    @property
    def last(self) -> int:
        """Last offset in the batch."""
        return self.messages[-1].offset

    @property
    def token(self) -> str:
        """The insert deduplication token: same offsets, same token."""
        return f"{self.topic}/{self.partition}/{self.first}-{self.last}"


@dataclass
class PartitionBuffer:
    """The sealed batches waiting to be written, and the one still filling."""

    topic: str
    partition: int
    size: int
    sealed: list[Batch] = field(default_factory=list)
    open: Batch | None = None
    next_offset: int | None = None

    def add(self, message: Message, now: float) -> None:
        """Append a message; seal the open batch when the offset crosses its boundary."""
        self.next_offset = message.offset + 1
        index = batch_index(message.offset, self.size)
        if self.open is not None and self.open.index != index:
            self.seal()
        if self.open is None:
            self.open = Batch(self.topic, self.partition, index, now)
        self.open.messages.append(message)
        if message.offset == (index + 1) * self.size - 1:
            self.seal()

    def seal(self) -> None:
        """Close the open batch (the partition ended or the batch lingered)."""
        if self.open is not None and self.open.messages:
            self.sealed.append(self.open)
        self.open = None

    def seal_if_due(self, now: float, linger_s: float, caught_up: bool) -> None:
        """Seal the open batch when the partition is drained or it waited ``linger_s``."""
        if self.open is not None and (caught_up or now - self.open.opened_at >= linger_s):
            self.seal()

    def first_uncommitted(self) -> int | None:
        """The first offset not yet written and committed (None before any record)."""
        if self.sealed:
            return self.sealed[0].first
        if self.open is not None:
            return self.open.first
        return self.next_offset

    def buffered(self) -> int:
        """Messages held in memory for this partition."""
        count = sum(len(b.messages) for b in self.sealed)
        return count + (len(self.open.messages) if self.open else 0)

    def __iter__(self) -> Iterator[Batch]:
        return iter(list(self.sealed))


def bisect(items: list[Any]) -> tuple[list[Any], list[Any]]:
    """Two halves of a block ClickHouse rejected, to find the rows it refuses."""
    middle = len(items) // 2
    return items[:middle], items[middle:]
