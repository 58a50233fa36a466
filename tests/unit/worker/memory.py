"""An in-memory source and sink for the worker's stages: records in, results out, no broker.

:class:`MemoryRuntime` does what the Faust runtime does with a
:class:`~streams.worker.stage.StageResult`, in the same order: encode every
output and dead letter with its topic's schema and contract key (so a record
that the producer could not write fails here too), collect them per topic,
then apply the table changes to plain dicts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from schemas.codec import decode, encode
from streams.worker.source import SourceRecord
from streams.worker.stage import DEAD_LETTERS, StageResult

_offsets = iter(range(10**9))


def record(
    topic: str, key: str | bytes | None, value: bytes | None, timestamp_ms: int = 1_000
) -> SourceRecord:
    """A consumed record at the next offset of partition 0."""
    raw_key = key.encode() if isinstance(key, str) else key
    return SourceRecord(topic, 0, next(_offsets), raw_key, value, timestamp_ms)


@dataclass
class MemoryRuntime:
    """Tables as dicts, produced records as lists per topic (decoded again, with their keys)."""

    tables: dict[str, dict[bytes, Any]] = field(default_factory=dict)
    produced: dict[str, list[tuple[str, dict[str, Any], int | None]]] = field(default_factory=dict)

    def table(self, name: str) -> dict[bytes, Any]:
        """The named table (created empty on first use)."""
        return self.tables.setdefault(name, {})

    def tables_of(self, *names: str) -> dict[str, dict[bytes, Any]]:
        """The named tables, as a stage reads them."""
        return {name: self.table(name) for name in names}

    def run(self, stage: Callable[..., StageResult], records: Iterable[SourceRecord],
            *args: Any, **kwargs: Any) -> StageResult:  # fmt: skip
        """Run ``stage(records, *args, **kwargs)`` and carry out its result."""
        result = stage(list(records), *args, **kwargs)
        self.carry_out(result)
        return result

    def carry_out(self, result: StageResult) -> None:
        """Produce the outputs and dead letters, then apply the table changes."""
        letters = [(DEAD_LETTERS, letter, None) for letter in result.dead_letters]
        outputs = [(o.topic, o.record, o.timestamp_ms) for o in result.outputs]
        for topic, value, timestamp_ms in outputs + letters:
            wire = encode(topic.schema, value)
            self.produced.setdefault(topic.short, []).append(
                (topic.key_of(value), decode(topic.schema, wire), timestamp_ms)
            )
        for change in result.changes:
            table = self.table(change.table)
            if change.deleted:
                table.pop(change.key, None)
            else:
                table[change.key] = change.value

    def records(self, short: str) -> list[dict[str, Any]]:
        """The decoded values produced to a topic (catalogue short name), in order."""
        return [value for _, value, _ in self.produced.get(short, [])]

    def reasons(self) -> list[str]:
        """The reasons of every dead letter produced, in order."""
        return [letter["reason"] for letter in self.records("dlq")]
