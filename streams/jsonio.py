"""``lfr publish`` and ``lfr consume``: JSON lines in and out of the Avro topics.

``lfr publish --topic detections FILE.jsonl`` reads one record per line
(field names as in the schema; instants as ISO-8601 with a zone or epoch
milliseconds; a template as base64 of its float16 bytes or a list of floats),
checks Avro types and the semantic rules, and publishes with kafka-python,
keyed as the data contract says. A file with any bad line publishes nothing
unless ``--skip-invalid``. ``lfr consume --topic T`` prints decoded records
as JSON lines with templates elided and subject ids redacted; a tombstone
prints as ``{"_tombstone": "<key>"}``.

Parsing and rendering are pure functions (:func:`parse_lines`,
:func:`render_record`); the two handlers are thin loops around them.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from common.errors import CommandError
from common.settings import Settings
from schemas.codec import decode, encode, shared_codec
from schemas.errors import DecodeError, SchemaError
from schemas.templates import template_to_bytes
from schemas.validation import validate
from streams.topics import RECORD_TOPICS, Topic

# the catalogue's topics that carry a record (streams/topics.py)
TOPICS: dict[str, Topic] = RECORD_TOPICS
PUBLISHABLE = ("detections", "watchlist", "operations", "adjudications")
TEMPLATE_FIELD = "template"
SUBJECT_FIELD = "subject_id"
REDACTED = "<redacted>"


class JsonRecordError(ValueError):
    """A JSON line that cannot become a record; the message names the field."""


@dataclass
class Parsed:
    """The outcome of parsing a JSON-lines file: messages to send and rejected lines."""

    messages: list[tuple[bytes, bytes]] = field(default_factory=list)
    rejects: list[tuple[int, str]] = field(default_factory=list)
    blank: int = 0


# --- JSON -> record -------------------------------------------------------


def _field_kinds(schema: Mapping[str, Any]) -> dict[str, set[str]]:
    """Per field, the JSON conversions that apply: 'instant' and/or 'bytes'."""
    kinds: dict[str, set[str]] = {}
    for schema_field in schema["fields"]:
        branches = schema_field["type"]
        branches = branches if isinstance(branches, list) else [branches]
        found = set()
        for branch in branches:
            if isinstance(branch, dict) and branch.get("logicalType") == "timestamp-millis":
                found.add("instant")
            if branch == "bytes" or (isinstance(branch, dict) and branch.get("type") == "bytes"):
                found.add("bytes")
        kinds[schema_field["name"]] = found
    return kinds


def _instant(name: str, value: Any) -> Any:
    if isinstance(value, str):
        try:
            instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise JsonRecordError(f"{name}: not an ISO-8601 instant") from None
        if instant.tzinfo is None:
            raise JsonRecordError(f"{name}: ISO-8601 instant without a time zone")
        return instant
    return value


def _bytes(name: str, value: Any) -> Any:
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise JsonRecordError(f"{name}: not valid base64") from None
    if name == TEMPLATE_FIELD and isinstance(value, list):
        if not value or not all(isinstance(v, int | float) for v in value):
            raise JsonRecordError(f"{name}: a template list must hold numbers")
        return template_to_bytes(np.asarray(value, dtype=np.float32))
    return value


def json_to_record(record_name: str, obj: Any) -> dict[str, Any]:
    """Convert one parsed JSON object to a record dict of ``record_name`` (no validation)."""
    if not isinstance(obj, dict):
        raise JsonRecordError("a line must hold one JSON object")
    kinds = _field_kinds(shared_codec().schemas.latest(record_name).raw)
    unknown = sorted(set(obj) - set(kinds))
    if unknown:
        raise JsonRecordError(f"unknown fields {unknown}")
    record = dict(obj)
    for name, conversions in kinds.items():
        value = record.get(name)
        if value is None:
            continue
        if "instant" in conversions:
            record[name] = _instant(name, value)
        if "bytes" in conversions:
            record[name] = _bytes(name, value)
    return record


def parse_lines(topic: str, lines: Iterable[str], *, now: datetime | None = None) -> Parsed:
    """Parse, type-check, validate, encode and key every line for short topic ``topic``."""
    spec = TOPICS[topic]
    parsed = Parsed()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            parsed.blank += 1
            continue
        try:
            record = json_to_record(spec.schema, json.loads(line))
            value = encode(spec.schema, record)
            validate(spec.schema, record, now=now)
            key = spec.key_of(record).encode("utf-8")
        except json.JSONDecodeError as exc:
            parsed.rejects.append((number, f"not JSON ({exc.msg} at column {exc.colno})"))
        except (JsonRecordError, SchemaError) as exc:
            parsed.rejects.append((number, str(exc)))
        else:
            parsed.messages.append((key, value))
    return parsed


# --- record -> JSON -------------------------------------------------------


def _json_value(name: str, value: Any) -> Any:
    if name == SUBJECT_FIELD and value is not None:
        return REDACTED  # raw subject ids are never written out, not even to a terminal
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, bytes):
        if name == TEMPLATE_FIELD:
            return f"<elided: {len(value)} bytes>"
        return base64.b64encode(value).decode("ascii")
    return value


def render_record(record: Mapping[str, Any]) -> str:
    """One JSON line for a decoded record; templates elided, subject ids redacted, bytes base64."""
    return json.dumps({name: _json_value(name, value) for name, value in record.items()})


# --- commands -------------------------------------------------------------


def register(subparsers: Any) -> None:
    """Add ``lfr publish`` and ``lfr consume`` to the ``lfr`` command."""
    publish = subparsers.add_parser("publish", help="Publish a JSON-lines file to a topic.")
    publish.add_argument("--topic", required=True, choices=PUBLISHABLE)
    publish.add_argument("file", type=Path, metavar="FILE.jsonl")
    publish.add_argument(
        "--skip-invalid",
        action="store_true",
        help="Publish the good lines even when some are bad (default: publish nothing).",
    )
    publish.set_defaults(handler=publish_command)

    consume = subparsers.add_parser("consume", help="Print a topic's records as JSON lines.")
    consume.add_argument("--topic", required=True, choices=tuple(TOPICS))
    consume.add_argument(
        "--from-beginning", action="store_true", help="Start at the earliest offset."
    )
    consume.add_argument("--max", type=int, default=None, help="Stop after N records.")
    consume.add_argument(
        "--timeout", type=float, default=None, help="Stop after S seconds without a record."
    )
    consume.set_defaults(handler=consume_command)


def publish_command(args: argparse.Namespace, settings: Settings) -> int:
    """Handler of ``lfr publish``."""
    from kafka import KafkaProducer  # imported here: the CLI starts without loading clients
    from kafka.errors import KafkaError

    try:
        with args.file.open(encoding="utf-8") as lines:
            parsed = parse_lines(args.topic, lines)
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"cannot read {args.file}: {exc}") from exc
    for number, message in parsed.rejects:
        print(f"{args.file}:{number}: {message}", file=sys.stderr)
    topic = TOPICS[args.topic].name(settings)
    if parsed.rejects and not args.skip_invalid:
        print(
            f"lfr publish: {len(parsed.rejects)} bad line(s), nothing published to {topic} "
            "(fix them or pass --skip-invalid)",
            file=sys.stderr,
        )
        return 1
    producer = KafkaProducer(**settings.kafka_python_config(), acks="all", linger_ms=5)
    try:
        futures = [producer.send(topic, key=key, value=value) for key, value in parsed.messages]
        producer.flush()
        for future in futures:
            future.get(timeout=30)
    except KafkaError:
        raise  # the command line names its cause (authentication, ACL, TLS, unreachable)
    except Exception as exc:
        raise CommandError(f"publishing to {topic} failed: {exc}") from exc
    finally:
        producer.close()
    print(
        f"lfr publish: {len(parsed.messages)} published to {topic}, "
        f"{len(parsed.rejects)} rejected, {parsed.blank} blank"
    )
    return 0


def _check_readable(settings: Settings, topic: str) -> None:
    """Raise the broker's error for ``topic`` (not authorised, unknown) before consuming.

    A consumer subscribed to a topic its user may not describe, or that does
    not exist, waits for metadata that never comes; one metadata request
    turns that into an error the command can name.
    """
    from kafka import KafkaAdminClient
    from kafka.errors import for_code

    admin = KafkaAdminClient(**settings.kafka_python_config())
    try:
        described = admin.describe_topics([topic])
    finally:
        admin.close()
    for entry in described:
        if entry.get("error_code"):
            raise for_code(entry["error_code"])(f"topic {topic}")


def consume_command(args: argparse.Namespace, settings: Settings) -> int:
    """Handler of ``lfr consume``."""
    from kafka import KafkaConsumer

    spec = TOPICS[args.topic]
    topic = spec.name(settings)
    consumer_options: dict[str, Any] = {
        "group_id": None,  # a viewer: no group, no committed offsets
        "auto_offset_reset": "earliest" if args.from_beginning else "latest",
        "enable_auto_commit": False,
    }
    if args.timeout is not None:
        consumer_options["consumer_timeout_ms"] = int(args.timeout * 1000)
    _check_readable(settings, topic)
    consumer = KafkaConsumer(topic, **settings.kafka_python_config(), **consumer_options)
    printed = undecodable = 0
    try:
        for message in consumer:
            if message.value is None:
                key = message.key.decode("utf-8", errors="replace") if message.key else None
                if key is not None and args.topic == "watchlist":
                    key = key.partition(":")[0] + ":" + REDACTED
                print(json.dumps({"_tombstone": key}), flush=True)
            else:
                try:
                    record = decode(spec.schema, message.value)
                except DecodeError as exc:
                    undecodable += 1
                    print(
                        f"{topic}[{message.partition}]@{message.offset}: "
                        f"{type(exc).__name__}: {exc}",
                        file=sys.stderr,
                    )
                    continue
                print(render_record(record), flush=True)
            printed += 1
            if args.max is not None and printed >= args.max:
                break
    finally:
        consumer.close()
    print(f"lfr consume: {printed} printed, {undecodable} undecodable", file=sys.stderr)
    return 0
