"""The schema files: the latest ``<Name>.avsc`` and every published version.

Layout (package data)::

    schemas/<Name>.avsc              the current schema: what encoders write
    schemas/history/<Name>/v<N>.avsc every version ever published, N = 1, 2, ...

The current file normally equals the highest history version; when it does
not, it is an unpublished change and counts as version N+1 (``lfr schemas
check`` then fails until it is recorded in the history).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import to_parsing_canonical_form

from schemas.errors import SchemaFileError, UnknownSchemaError
from schemas.fingerprint import fingerprint_bytes

SCHEMA_DIR = Path(__file__).resolve().parent
NAMESPACE = "lfr.v1"
RECORD_NAMES: tuple[str, ...] = (
    "DetectionEvent",
    "WatchlistEntry",
    "OperationWindow",
    "Adjudication",
    "Scan",
    "Alert",
    "Outcome",
    "DeadLetter",
)
_VERSION_FILE = re.compile(r"^v([1-9][0-9]*)\.avsc$")


@dataclass(frozen=True)
class SchemaVersion:
    """One version of one record schema, parsed once and kept."""

    name: str
    version: int
    raw: dict[str, Any]
    parsed: dict[str, Any]
    canonical_form: str
    fingerprint: bytes
    path: Path
    published: bool


@dataclass(frozen=True)
class SchemaSet:
    """Every record's versions, oldest first; the last one is the current schema."""

    versions: dict[str, tuple[SchemaVersion, ...]]
    root: Path

    def latest(self, name: str) -> SchemaVersion:
        """The current version of record ``name``."""
        try:
            return self.versions[name][-1]
        except KeyError:
            raise UnknownSchemaError(f"unknown record schema {name!r}") from None

    def version(self, name: str, version: int) -> SchemaVersion:
        """Version ``version`` (1-based) of record ``name``."""
        for candidate in self.versions.get(name, ()):
            if candidate.version == version:
                return candidate
        raise UnknownSchemaError(f"record schema {name!r} has no version {version}")


def read_schema_file(path: Path) -> dict[str, Any]:
    """Read one ``.avsc`` file as JSON, with a typed error for any failure."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaFileError(f"{path}: cannot read schema: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("type") != "record":
        raise SchemaFileError(f"{path}: top level must be an Avro record")
    return raw


def build_version(
    name: str, version: int, raw: dict[str, Any], path: Path, *, published: bool
) -> SchemaVersion:
    """Parse a schema and compute its canonical form and fingerprint."""
    try:
        parsed = fastavro.parse_schema(raw, named_schemas={})
    except Exception as exc:  # fastavro raises several unrelated types for bad schemas
        raise SchemaFileError(f"{path}: invalid Avro schema: {exc}") from exc
    if not isinstance(parsed, dict):
        raise SchemaFileError(f"{path}: top level must be an Avro record")
    full_name = parsed.get("name", "")
    if full_name.rpartition(".")[2] != name:
        raise SchemaFileError(f"{path}: record is named {full_name!r}, expected {name!r}")
    canonical = to_parsing_canonical_form(parsed)
    return SchemaVersion(
        name=name,
        version=version,
        raw=raw,
        parsed=parsed,
        canonical_form=canonical,
        fingerprint=fingerprint_bytes(canonical),
        path=path,
        published=published,
    )


def _history(root: Path, name: str) -> list[SchemaVersion]:
    folder = root / "history" / name
    numbered: list[tuple[int, Path]] = []
    if folder.is_dir():
        for path in folder.iterdir():
            match = _VERSION_FILE.match(path.name)
            if match is None:
                raise SchemaFileError(f"{path}: history files must be named v<N>.avsc")
            numbered.append((int(match.group(1)), path))
    numbered.sort()
    for expected, (number, path) in enumerate(numbered, start=1):
        if number != expected:
            raise SchemaFileError(f"{path}: history of {name} skips v{expected}")
    return [
        build_version(name, number, read_schema_file(path), path, published=True)
        for number, path in numbered
    ]


def load_schema_set(root: Path = SCHEMA_DIR) -> SchemaSet:
    """Load every ``<Name>.avsc`` under ``root`` and its history."""
    versions: dict[str, tuple[SchemaVersion, ...]] = {}
    for path in sorted(root.glob("*.avsc")):
        name = path.stem
        history = _history(root, name)
        raw = read_schema_file(path)
        if history and history[-1].raw == raw:
            versions[name] = tuple(history)
            continue
        current = build_version(name, len(history) + 1, raw, path, published=False)
        versions[name] = (*history, current)
    if not versions:
        raise SchemaFileError(f"{root}: no .avsc files")
    return SchemaSet(versions=versions, root=root)
