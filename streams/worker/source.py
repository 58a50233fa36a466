"""Where an input record came from, how a stage admits it, and its dead letter when rejected.

:func:`admit` is the one input adapter of the worker: a consumed record is
decoded with the project codec, validated, and its key checked against the
topic catalogue, or it becomes a dead letter with a reason. Every stage
reads its input through it (the detections stage decodes inside
:func:`streams.worker.detections.process_batch`, where its templates are
handled). The runtime turns Faust's and aiokafka's records into
:class:`SourceRecord` (:func:`streams.worker.runtime.inputs.source_record`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from schemas.codec import decode as shared_decode
from schemas.deadletter import dead_letter
from schemas.errors import SchemaError
from schemas.validation import validate
from streams.topics import Topic
from streams.worker.errors import InvalidRecordError, WorkerError

Decode = Callable[[str, bytes], dict[str, Any]]


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

    def reject(self, record: SourceRecord, error: BaseException) -> dict[str, Any]:
        """``record``'s dead letter from this stage (payload dropped for biometric topics)."""
        return reject(record, error, self.stage, biometric=self.topic.biometric)


@dataclass(frozen=True, slots=True)
class Admitted:
    """A record that passed its input's checks, with its decoded value (``None``: tombstone)."""

    record: SourceRecord
    value: dict[str, Any] | None


def check_key(topic: Topic, value: Mapping[str, Any], key: str | None) -> None:
    """Raise :class:`InvalidRecordError` unless ``key`` is the contract key of ``value``."""
    if key != topic.key_of(value):
        raise InvalidRecordError(f"the record key is not the {topic.schema}'s contract key")


def admit(record: SourceRecord, spec: Input, decode: Decode = shared_decode) -> Admitted:
    """Decode, validate and key-check one record; raises a ``SchemaError`` or ``WorkerError``."""
    if record.key is None and spec.key is not KeyRule.ANY:
        raise InvalidRecordError(f"a {spec.topic.schema} record without a key")
    if record.value is None:
        if spec.tombstones:
            return Admitted(record, None)
        raise InvalidRecordError(f"a {spec.topic.schema} record without a value")
    value = decode(spec.topic.schema, record.value)
    if spec.validate:
        validate(spec.topic.schema, value)
    if spec.key is KeyRule.CONTRACT:
        check_key(spec.topic, value, record.key_text)
    return Admitted(record, value)


def admit_batch(
    records: Iterable[SourceRecord], spec: Input, decode: Decode = shared_decode
) -> tuple[list[Admitted], list[dict[str, Any]]]:
    """The batch's admitted records, in order, and the dead letters of the others."""
    admitted: list[Admitted] = []
    letters: list[dict[str, Any]] = []
    for record in records:
        try:
            admitted.append(admit(record, spec, decode))
        except (SchemaError, WorkerError) as exc:
            letters.append(spec.reject(record, exc))
    return admitted, letters
