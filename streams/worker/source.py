"""Where an input record came from, how a stage admits it, and its dead letter when rejected.

:func:`admit` is the one input adapter of the worker: a consumed record is
decoded with the project codec, validated, and its key checked against the
topic catalogue, or it becomes a dead letter with a reason. Every stage
reads its input through it; an input may validate the whole batch in one
call instead of record by record (the detections stage:
:func:`schemas.batch_validation.check_detections`). The runtime turns
Faust's and aiokafka's records into :class:`SourceRecord`
(:func:`streams.worker.runtime.inputs.source_record`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple

from schemas.codec import decode as shared_decode
from schemas.deadletter import dead_letter
from schemas.errors import SchemaError
from schemas.validation import validate
from streams.topics import Topic
from streams.worker.errors import InvalidRecordError, WorkerError

Decode = Callable[[str, bytes], dict[str, Any]]
BatchCheck = Callable[[Sequence[Mapping[str, Any]]], list[SchemaError | None]]
"""A batch's decoded values -> each one's validation error, or None when it passes."""


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One consumed Kafka record: coordinates, raw key and value, record timestamp."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int

    def __repr__(self) -> str:
        # The value may be a biometric template: never let it reach a log line.
        size = -1 if self.value is None else len(self.value)
        return f"SourceRecord({self.topic}[{self.partition}]@{self.offset}, {size} bytes)"

    @property
    def key_text(self) -> str | None:
        """The key as text (lossy), for ids such as site_id or alert_id."""
        return None if self.key is None else self.key.decode("utf-8", errors="replace")


def reject(
    record: SourceRecord, error: BaseException, stage: str, *, biometric: bool
) -> dict[str, Any]:
    """The DeadLetter record for ``record``.

    ``biometric`` inputs (detections, watchlist) keep only the payload's
    sha256 and size, and a watchlist key loses its subject id, whatever the
    topic is called.
    """
    letter = dead_letter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        payload=record.value,
        error=error,
        stage=stage,
        biometric=(record.topic,) if biometric else (),
    )
    if biometric:
        letter["payload"] = None
    return letter


class KeyRule(Enum):
    """What an input's record key must be."""

    ANY = "any"
    REQUIRED = "required"
    """Present (it names the state the record changes)."""
    CONTRACT = "contract"
    """Equal to the key the catalogue derives from the value (site_id, alert_id...)."""


@dataclass(frozen=True, slots=True)
class Input:
    """How one stage admits the records of one topic."""

    topic: Topic
    """The catalogue entry: record schema, contract key, whether values are biometric."""
    stage: str
    """The dead letters' ``stage``."""
    key: KeyRule = KeyRule.CONTRACT
    validate: bool = True
    """Run the contract's semantic checks (:func:`schemas.validation.validate`)."""
    tombstones: bool = False
    """A null value is admitted (as ``None``: a compaction tombstone) instead of rejected."""
    batch_check: BatchCheck | None = None
    """Validate the whole batch's decoded values in one call (with ``validate`` False).

    It must give each value ``validate``'s verdict; it runs after decoding and
    before the key check, as ``validate`` does.
    """
    null_value: type[SchemaError] | type[WorkerError] = InvalidRecordError
    """The error that rejects a null value when ``tombstones`` is False."""

    def reject(self, record: SourceRecord, error: BaseException) -> dict[str, Any]:
        """``record``'s dead letter from this stage (payload dropped for biometric topics)."""
        return reject(record, error, self.stage, biometric=self.topic.biometric)


class Admitted(NamedTuple):
    """A record that passed its input's checks, with its decoded value (``None``: tombstone).

    A tuple: a detections batch makes one per record, and a tuple is built
    several times faster than a frozen dataclass.
    """

    record: SourceRecord
    value: dict[str, Any] | None


def check_key(topic: Topic, value: Mapping[str, Any], key: str | None) -> None:
    """Raise :class:`InvalidRecordError` unless ``key`` is the contract key of ``value``."""
    if key != topic.key_of(value):
        raise InvalidRecordError(f"the record key is not the {topic.schema}'s contract key")


def admit(record: SourceRecord, spec: Input, decode: Decode = shared_decode) -> Admitted:
    """Decode, validate and key-check one record; raises a ``SchemaError`` or ``WorkerError``."""
    value = _decoded(record, spec, decode)
    if value is None:
        return Admitted(record, None)
    if spec.batch_check is not None:
        (error,) = spec.batch_check([value])
        if error is not None:
            raise error
    elif spec.validate:
        validate(spec.topic.schema, value)
    if spec.key is KeyRule.CONTRACT:
        check_key(spec.topic, value, record.key_text)
    return Admitted(record, value)


def _decoded(record: SourceRecord, spec: Input, decode: Decode) -> dict[str, Any] | None:
    """The record's decoded value (``None``: an admitted tombstone), before any semantic check."""
    if record.key is None and spec.key is not KeyRule.ANY:
        raise InvalidRecordError(f"a {spec.topic.schema} record without a key")
    if record.value is None:
        if spec.tombstones:
            return None
        raise spec.null_value(f"a {spec.topic.schema} record without a value")
    return decode(spec.topic.schema, record.value)


def admit_batch(
    records: Iterable[SourceRecord], spec: Input, decode: Decode = shared_decode
) -> tuple[list[Admitted], list[dict[str, Any]]]:
    """The batch's admitted records, in order, and the dead letters of the others, in order."""
    if spec.batch_check is not None:
        return _admit_checked(records, spec, spec.batch_check, decode)
    admitted: list[Admitted] = []
    letters: list[dict[str, Any]] = []
    for record in records:
        try:
            admitted.append(admit(record, spec, decode))
        except (SchemaError, WorkerError) as exc:
            letters.append(spec.reject(record, exc))
    return admitted, letters


def _admit_checked(
    records: Iterable[SourceRecord], spec: Input, check: BatchCheck, decode: Decode
) -> tuple[list[Admitted], list[dict[str, Any]]]:
    """:func:`admit_batch` with the semantic checks run once over the decoded batch."""
    schema = spec.topic.schema
    keyless = spec.key is KeyRule.ANY
    decoded: list[Admitted] = []
    positions: list[int] = []
    """Each decoded record's position in the batch (dead letters are returned in batch order)."""
    letters: list[tuple[int, dict[str, Any]]] = []
    for position, record in enumerate(records):
        try:
            if record.value is None or (record.key is None and not keyless):
                value = _decoded(record, spec, decode)
            else:  # the common case, without a call per record
                value = decode(schema, record.value)
        except (SchemaError, WorkerError) as exc:
            letters.append((position, spec.reject(record, exc)))
            continue
        decoded.append(Admitted(record, value))
        positions.append(position)
    values = [(i, item.value) for i, item in enumerate(decoded) if item.value is not None]
    errors = check([value for _, value in values])
    rejected: set[int] = set()
    for (i, value), error in zip(values, errors, strict=True):
        record = decoded[i].record
        try:
            if error is not None:
                raise error
            if spec.key is KeyRule.CONTRACT:
                check_key(spec.topic, value, record.key_text)
        except (SchemaError, WorkerError) as exc:
            rejected.add(i)
            letters.append((positions[i], spec.reject(record, exc)))
    if rejected:
        decoded = [item for i, item in enumerate(decoded) if i not in rejected]
        letters.sort(key=lambda pair: pair[0])
    return decoded, [letter for _, letter in letters]
