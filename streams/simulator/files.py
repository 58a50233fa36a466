"""JSON-lines output that ``lfr publish`` reads, and the ground truth file.

One file per topic (``detections.jsonl``, ``watchlist.jsonl``,
``operations.jsonl``, ``adjudications.jsonl``), each in event-time order:
field names as in the schema, instants as ISO-8601 UTC with milliseconds
(``2025-10-02T10:41:07.123Z``), bytes (templates) as base64. A tombstone has
no record to write, so watchlist tombstones are left out: the REMOVE record
before each of them already deletes the entry. Publish operations and
watchlist before detections, and adjudications last.

Output is deterministic: the same scenario gives byte-identical files.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from streams.simulator.errors import OutputError
from streams.simulator.events import TOPICS, TimedRecord

TRUTH_FILE = "truth.json"


def file_name(topic: str) -> str:
    """The JSON-lines file of contract topic ``topic``."""
    return f"{topic}.jsonl"


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def to_json_line(record: Mapping[str, Any]) -> str:
    """One record as a JSON line (no trailing newline), keys in schema order."""
    return json.dumps(
        {name: _json_value(value) for name, value in record.items()},
        separators=(",", ":"),
        ensure_ascii=True,
    )


class JsonlWriter:
    """Context manager writing records to their topic's file under ``out_dir``."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.counts = dict.fromkeys(TOPICS, 0)
        self._stack = ExitStack()
        self._handles: dict[str, IO[str]] = {}

    def __enter__(self) -> JsonlWriter:
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            for topic in TOPICS:
                path = self.out_dir / file_name(topic)
                self._handles[topic] = self._stack.enter_context(
                    path.open("w", encoding="utf-8", newline="\n")
                )
        except OSError as exc:
            self._stack.close()
            raise OutputError(f"cannot write simulation files under {self.out_dir}: {exc}") from exc
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def write(self, item: TimedRecord) -> None:
        """Append one record (tombstones are skipped: see the module docstring)."""
        if item.value is None:
            return
        try:
            self._handles[item.topic].write(to_json_line(item.value) + "\n")
        except OSError as exc:
            raise OutputError(f"cannot write {file_name(item.topic)}: {exc}") from exc
        self.counts[item.topic] += 1


def write_jsonl(records: Iterable[TimedRecord], out_dir: Path) -> dict[str, int]:
    """Write every record to its topic's file under ``out_dir``; counts per topic."""
    with JsonlWriter(out_dir) as writer:
        for item in records:
            writer.write(item)
    return writer.counts


def write_truth(truth: Mapping[str, Any], out_dir: Path) -> Path:
    """Write the ground truth document as ``truth.json`` under ``out_dir``."""
    path = out_dir / TRUTH_FILE
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc}") from exc
    return path
