"""Encode and decode the project's records: Avro single-object encoding.

Wire format (the Avro specification's single-object encoding)::

    C3 01 | CRC-64-AVRO fingerprint of the writer's parsing canonical form (8 bytes LE) | body

Any Avro library reads it without a registry (Java: ``BinaryMessageDecoder``).
Decoding looks the fingerprint up among every published version of the
requested record and resolves the body to the current schema, so a reader of
version N reads N-1 and N+1 (when N+1 is in its history). Sites that run a
schema registry can use the Confluent framing instead (``00`` + 4-byte
big-endian schema id + body), see :func:`encode_confluent`.

Everything is parsed once per process: a decode is a dict lookup, one
``schemaless_reader`` call and a trailing-bytes check. :meth:`Codec.decode_millis`
leaves the top-level fields typed ``timestamp-millis`` (not in a union) as epoch
milliseconds, the worker's unit, instead of building a datetime per field.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from io import BytesIO
from typing import Any, NoReturn

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from schemas.errors import (
    BadMagicError,
    EncodeError,
    OversizeError,
    TruncatedError,
    UndecodableError,
    UnknownFingerprintError,
    UnknownSchemaError,
    WrongRecordError,
)
from schemas.registry import SchemaSet, SchemaVersion, load_schema_set
from schemas.typecheck import RecordCheck, compile_record_check

MAGIC = b"\xc3\x01"
HEADER_SIZE = len(MAGIC) + 8
CONFLUENT_MAGIC = b"\x00"
CONFLUENT_HEADER_SIZE = 5
DEFAULT_MAX_PAYLOAD_BYTES = 1 << 20
"""Payloads above this are rejected before parsing (a 512-d template is 1 KiB)."""

_Reader = tuple[dict[str, Any], dict[str, Any] | None]
_MillisReaders = tuple[dict[bytes, _Reader], tuple[str, ...]]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
DATETIME_MILLIS = (
    (datetime.min.replace(tzinfo=UTC) - _EPOCH) // _ONE_MS,
    (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _ONE_MS,
)
"""The epoch milliseconds that :meth:`Codec.decode` can turn into a datetime (years 1-9999)."""


def _parse(raw: dict[str, Any]) -> dict[str, Any]:
    parsed = parse_schema(raw, named_schemas={})
    if not isinstance(parsed, dict):
        raise UnknownSchemaError("a record schema did not parse to a record")
    return parsed


def _without_timestamp_types(raw: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """``raw`` with its top-level ``timestamp-millis`` fields as plain longs, and their names.

    A field whose type is a union (a nullable instant) keeps its logical type.

    Only the logical type goes: the parsing canonical form, hence the
    fingerprint and the bytes read, is the same.
    """
    fields = []
    names = []
    for field in raw["fields"]:
        kind = field["type"]
        if isinstance(kind, dict) and kind.get("logicalType") == "timestamp-millis":
            field = {**field, "type": {"type": kind["type"]}}
            names.append(field["name"])
        fields.append(field)
    return {**raw, "fields": fields}, tuple(names)


def _describe(exc: BaseException) -> str:
    # fastavro's messages name sizes and positions, not values; keep them short anyway
    return f"{type(exc).__name__}: {str(exc)[:120]}"


class Codec:
    """Encoder/decoder over one :class:`SchemaSet`; the module functions use a shared one."""

    def __init__(
        self,
        schema_set: SchemaSet | None = None,
        *,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        reader_versions: Mapping[str, int] | None = None,
    ) -> None:
        """Build every writer and reader once.

        ``reader_versions`` pins a record to an older version for reading and default
        writing: a service not yet upgraded, which still reads newer writers' bytes
        because their schemas are in its history.
        """
        self.schemas = schema_set if schema_set is not None else load_schema_set()
        self.max_payload_bytes = max_payload_bytes
        pinned = reader_versions or {}
        self._writers: dict[tuple[str, int | None], tuple[bytes, dict[str, Any], RecordCheck]]
        self._writers = {}
        self._default_writers: dict[str, tuple[bytes, dict[str, Any], RecordCheck]] = {}
        self._readers: dict[str, dict[bytes, _Reader]] = {}
        self._millis_readers: dict[str, _MillisReaders] = {}
        self._targets: dict[str, SchemaVersion] = {}
        self._fingerprint_owner: dict[bytes, str] = {}
        for name, versions in self.schemas.versions.items():
            target = self.schemas.version(name, pinned[name]) if name in pinned else versions[-1]
            readers: dict[bytes, _Reader] = {}
            for version in versions:
                writer = (MAGIC + version.fingerprint, version.parsed, self._check_for(version))
                self._writers[(name, version.version)] = writer
                # same parsing canonical form -> same bytes on the wire: keep the newest
                readers[version.fingerprint] = (
                    version.parsed,
                    None if version.canonical_form == target.canonical_form else target.parsed,
                )
                self._fingerprint_owner[version.fingerprint] = name
            self._writers[(name, None)] = self._writers[(name, target.version)]
            self._default_writers[name] = self._writers[(name, None)]
            self._readers[name] = readers
            self._targets[name] = target

    @staticmethod
    def _check_for(version: SchemaVersion) -> RecordCheck:
        return compile_record_check(version.raw)

    def fingerprint(self, name: str, version: int | None = None) -> bytes:
        """The 8-byte fingerprint of a record schema (default: the current version)."""
        if version is None:
            return self.schemas.latest(name).fingerprint
        return self.schemas.version(name, version).fingerprint

    def encode_body(
        self, name: str, record: Mapping[str, Any], version: int | None = None
    ) -> bytes:
        """The Avro binary body of ``record``, without framing."""
        header, parsed, check = self._writer(name, version)
        check(record)
        out = BytesIO()
        self._write(out, parsed, record)
        return out.getvalue()

    def encode(self, name: str, record: Mapping[str, Any], version: int | None = None) -> bytes:
        """Single-object encoding of ``record`` with the current (or the given) schema version."""
        # hot path of every producer: one dict lookup, no helper calls
        writer = self._default_writers.get(name) if version is None else None
        header, parsed, check = writer or self._writer(name, version)
        check(record)
        out = BytesIO(header)
        out.seek(HEADER_SIZE)
        try:
            schemaless_writer(out, parsed, record)
        except (TypeError, ValueError, OverflowError, AttributeError, struct.error) as exc:
            raise EncodeError(f"cannot encode: {_describe(exc)}") from None
        return out.getvalue()

    def decode(self, name: str, data: bytes) -> dict[str, Any]:
        """Decode single-object bytes of record ``name`` and resolve them to the current schema."""
        return self._decode(name, data, self._readers.get(name))

    def decode_millis(self, name: str, data: bytes) -> dict[str, Any]:
        """:meth:`decode`, with top-level ``timestamp-millis`` fields as ``int`` epoch milliseconds.

        Same verdicts and errors as :meth:`decode`: a value that :meth:`decode`
        cannot make a datetime of is decoded again by it, to raise its error.
        """
        millis = self._millis_readers.get(name)
        if millis is None:
            millis = self._millis_readers_of(name)
        readers, fields = millis
        record = self._decode(name, data, readers)
        low, high = DATETIME_MILLIS
        for field in fields:
            value = record[field]
            if not low <= value <= high:
                return self.decode(name, data)
        return record

    def _millis_readers_of(self, name: str) -> _MillisReaders:
        if name not in self._readers:
            raise UnknownSchemaError(f"unknown record schema {name!r}")
        target = self._targets[name]
        plain_target, fields = _without_timestamp_types(target.raw)
        readers: dict[bytes, _Reader] = {}
        for version in self.schemas.versions[name]:
            plain, _ = _without_timestamp_types(version.raw)
            readers[version.fingerprint] = (
                _parse(plain),
                None if version.canonical_form == target.canonical_form else _parse(plain_target),
            )
        self._millis_readers[name] = (readers, fields)
        return readers, fields

    def _decode(
        self, name: str, data: bytes, readers: dict[bytes, _Reader] | None
    ) -> dict[str, Any]:
        # the hot path of every worker: checks are ordered cheapest first, no copies
        if type(data) is not bytes:
            data = bytes(data)
        size = len(data)
        if size > self.max_payload_bytes:
            raise OversizeError(f"{size} bytes exceeds the {self.max_payload_bytes}-byte limit")
        if size < HEADER_SIZE:
            raise TruncatedError(f"{size} bytes is shorter than the framing header")
        if data[0] != 0xC3 or data[1] != 0x01:
            raise BadMagicError(f"not single-object encoded (starts {data[:2].hex()})")
        if readers is None:
            raise UnknownSchemaError(f"unknown record schema {name!r}")
        reader = readers.get(data[2:HEADER_SIZE])
        if reader is None:
            self._unknown(name, data[2:HEADER_SIZE])
        stream = BytesIO(data)
        stream.seek(HEADER_SIZE)
        try:
            record: dict[str, Any] = schemaless_reader(stream, *reader)  # type: ignore[assignment]
        except Exception as exc:  # corrupt bytes surface as many types; all mean "undecodable"
            raise UndecodableError(f"{name} body does not decode: {_describe(exc)}") from None
        if stream.tell() != size:
            raise UndecodableError(f"{name} body has {size - stream.tell()} trailing bytes")
        return record

    def encode_confluent(
        self, name: str, record: Mapping[str, Any], *, schema_id: int, version: int | None = None
    ) -> bytes:
        """Confluent wire format: ``00`` + 4-byte big-endian registry id + body."""
        if not 0 <= schema_id <= 0xFFFFFFFF:
            raise EncodeError(f"schema id {schema_id} does not fit in 4 bytes")
        return (
            CONFLUENT_MAGIC + struct.pack(">I", schema_id) + self.encode_body(name, record, version)
        )

    def decode_confluent(
        self, name: str, data: bytes, *, schema_ids: Mapping[int, int]
    ) -> dict[str, Any]:
        """Decode Confluent-framed bytes.

        ``schema_ids`` maps the registry's schema ids to versions of ``name``.
        """
        size = len(data)
        if size > self.max_payload_bytes:
            raise OversizeError(f"{size} bytes exceeds the {self.max_payload_bytes}-byte limit")
        if size < CONFLUENT_HEADER_SIZE:
            raise TruncatedError(f"{size} bytes is shorter than the Confluent header")
        if data[:1] != CONFLUENT_MAGIC:
            raise BadMagicError("not Confluent-framed (first byte is not 00)")
        (schema_id,) = struct.unpack_from(">I", data, 1)
        version = schema_ids.get(schema_id)
        if version is None:
            raise UnknownFingerprintError(f"registry schema id {schema_id} is not mapped")
        fingerprint = self.fingerprint(name, version)
        reader = self._readers[name][fingerprint]
        return self._read(name, data, CONFLUENT_HEADER_SIZE, reader)

    def _writer(self, name: str, version: int | None) -> tuple[bytes, dict[str, Any], RecordCheck]:
        try:
            return self._writers[(name, version)]
        except KeyError:
            raise UnknownSchemaError(f"unknown record schema {name!r} version {version}") from None

    @staticmethod
    def _write(out: BytesIO, parsed: dict[str, Any], record: Mapping[str, Any]) -> None:
        try:
            schemaless_writer(out, parsed, record)
        except (TypeError, ValueError, OverflowError, AttributeError, struct.error) as exc:
            raise EncodeError(f"cannot encode: {_describe(exc)}") from None

    def _unknown(self, name: str, fingerprint: bytes) -> NoReturn:
        owner = self._fingerprint_owner.get(fingerprint)
        if owner is not None:
            raise WrongRecordError(f"expected {name}, got a {owner} fingerprint")
        raise UnknownFingerprintError(f"unknown {name} writer fingerprint {fingerprint.hex()}")

    @staticmethod
    def _read(name: str, data: bytes, offset: int, reader: _Reader) -> dict[str, Any]:
        stream = BytesIO(data)
        stream.seek(offset)
        writer_schema, reader_schema = reader
        try:
            record = schemaless_reader(stream, writer_schema, reader_schema)
        except Exception as exc:  # corrupt bytes surface as many types; all mean "undecodable"
            raise UndecodableError(f"{name} body does not decode: {_describe(exc)}") from None
        if stream.tell() != len(data):
            raise UndecodableError(f"{name} body has {len(data) - stream.tell()} trailing bytes")
        if not isinstance(record, dict):
            raise UndecodableError(f"{name} body did not decode to a record")
        return record


_shared: Codec | None = None


def shared_codec() -> Codec:
    """The process-wide codec over the packaged schemas (built on first use)."""
    global _shared
    if _shared is None:
        _shared = Codec()
    return _shared


def encode(name: str, record: Mapping[str, Any]) -> bytes:
    """Single-object encoding of ``record`` (record name e.g. ``"DetectionEvent"``)."""
    return (_shared or shared_codec()).encode(name, record)


def decode(name: str, data: bytes) -> dict[str, Any]:
    """Decode any known writer version of ``name``, resolved to the current schema.

    Raises only :class:`schemas.errors.DecodeError` subclasses for bad bytes.
    """
    return (_shared or shared_codec()).decode(name, data)


def decode_millis(name: str, data: bytes) -> dict[str, Any]:
    """:func:`decode` with top-level timestamps as epoch milliseconds (see :class:`Codec`)."""
    return (_shared or shared_codec()).decode_millis(name, data)
