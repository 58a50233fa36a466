"""What every stage returns: its outputs, its dead letters and its state changes.

A stage is a plain function from a batch of source records (and the state it
reads) to a :class:`StageResult`. The runtime (:mod:`streams.worker.runtime`)
produces the outputs and dead letters, waits for the broker's
acknowledgement, and only then applies the state changes to its tables, so a
failure half way leaves the tables as they were and the batch is processed
again from the same state. Tests drive a stage with a list of records and
plain dicts as tables (:class:`StateChanges` reads either).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from schemas.codec import decode as shared_decode
from streams.topics import BY_SHORT, Topic
from streams.worker.source import Admitted, Decode, Input, SourceRecord, admit_batch

SCANS, ALERTS, OUTCOMES, DEAD_LETTERS = (
    BY_SHORT[t] for t in ("scans", "alerts", "outcomes", "dlq")
)
"""The catalogue entries of the topics the stages produce to."""


class Output(NamedTuple):
    """One record to produce: its topic's catalogue entry gives the schema and the key.

    A tuple rather than a dataclass: a detections batch makes one per scan,
    and a tuple is the cheapest object Python builds.
    """

    topic: Topic
    record: dict[str, Any]
    timestamp_ms: int | None = None
    """Kafka timestamp to write (the source record's, so latency is measured from it)."""

    @property
    def key(self) -> str:
        """The record's Kafka key, as the catalogue says."""
        return self.topic.key_of(self.record)


@dataclass(frozen=True, slots=True)
class TableChange:
    """Set (``deleted`` False) or delete one key of a named table."""

    table: str
    key: bytes
    value: Any = None
    deleted: bool = False


@dataclass(slots=True)
class StageResult:
    """Everything one batch of one stage produces."""

    outputs: list[Output] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    changes: list[TableChange] = field(default_factory=list)


class StateChanges:
    """The tables as a batch sees them: the stored values under the batch's own changes.

    ``tables`` maps a table name to its entries (a Faust table or a dict);
    nothing is written to them here. :attr:`changes` lists the writes in
    order, for :class:`StageResult`.
    """

    def __init__(self, tables: Mapping[str, Mapping[bytes, Any]]) -> None:
        self._tables = tables
        self._latest: dict[tuple[str, bytes], TableChange] = {}
        self.changes: list[TableChange] = []

    def get(self, table: str, key: bytes) -> Any:
        """The value the batch sees (``None``: absent or deleted)."""
        change = self._latest.get((table, key))
        if change is not None:
            return None if change.deleted else change.value
        return self._tables[table].get(key)

    def put(self, table: str, key: bytes, value: Any) -> None:
        """Set ``table[key]``."""
        self._record(TableChange(table, key, value))

    def delete(self, table: str, key: bytes) -> None:
        """Delete ``table[key]``."""
        self._record(TableChange(table, key, deleted=True))

    def _record(self, change: TableChange) -> None:
        self._latest[(change.table, change.key)] = change
        self.changes.append(change)


Step = Callable[[Admitted, StateChanges, StageResult], None]
"""What a stage does with one admitted record: read and change state, add outputs."""


def run_stage(
    records: Iterable[SourceRecord],
    spec: Input,
    tables: Mapping[str, Mapping[bytes, Any]],
    step: Step,
    decode: Decode = shared_decode,
) -> StageResult:
    """Admit ``records`` through ``spec``, then ``step`` each admitted one in order."""
    admitted, letters = admit_batch(records, spec, decode)
    result = StageResult(dead_letters=letters)
    state = StateChanges(tables)
    for item in admitted:
        step(item, state, result)
    result.changes = state.changes
    return result
