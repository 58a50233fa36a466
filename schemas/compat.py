"""FULL compatibility of Avro schemas, by the specification's resolution rules.

A change is FULL-compatible with an earlier version when each can read what
the other wrote: backward (new reader, old writer: consumers upgraded first)
and forward (old reader, new writer: producers upgraded first). The rules
below are those of "Schema Resolution" in the Avro specification, plus one
stricter rule: a changed logical type (say timestamp-millis to -micros) is
incompatible, because the bytes would resolve but mean something else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastavro.schema import expand_schema

from schemas.registry import SchemaVersion

_PROMOTIONS = {
    ("int", "long"),
    ("int", "float"),
    ("int", "double"),
    ("long", "float"),
    ("long", "double"),
    ("float", "double"),
    ("string", "bytes"),
    ("bytes", "string"),
}
_NAMED = {"record", "enum", "fixed"}


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, str):
        return schema
    inner = schema.get("type")
    return inner if isinstance(inner, str) else _kind(inner)


def _logical(schema: Any) -> str | None:
    return schema.get("logicalType") if isinstance(schema, dict) else None


def _describe(schema: Any) -> str:
    kind = _kind(schema)
    logical = _logical(schema)
    if kind in _NAMED:
        return f"{kind} {schema['name']}"
    return f"{kind} ({logical})" if logical else kind


def _names_match(reader: dict[str, Any], writer: dict[str, Any]) -> bool:
    reader_name, writer_name = reader["name"], writer["name"]
    if reader_name == writer_name:
        return True
    namespace = reader_name.rpartition(".")[0]
    for alias in reader.get("aliases", ()):
        if alias == writer_name or (namespace and f"{namespace}.{alias}" == writer_name):
            return True
    return False


def _writer_field(reader_field: dict[str, Any], writer_fields: dict[str, Any]) -> Any:
    for name in (reader_field["name"], *reader_field.get("aliases", ())):
        if name in writer_fields:
            return writer_fields[name]
    return None


def _record_problems(reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[str]:
    problems: list[str] = []
    writer_fields = {field["name"]: field for field in writer["fields"]}
    for field in reader["fields"]:
        field_path = f"{path}.{field['name']}"
        match = _writer_field(field, writer_fields)
        if match is None:
            if "default" not in field:
                problems.append(
                    f"{field_path}: the reader needs this field, the writer lacks it "
                    "and the reader gives no default"
                )
            continue
        problems.extend(reader_problems(field["type"], match["type"], field_path))
    return problems


def reader_problems(reader: Any, writer: Any, path: str = "") -> list[str]:
    """Why data written with ``writer`` cannot be read with ``reader`` (empty: it can).

    Both schemas are expanded (no named-type references).
    """
    writer_kind, reader_kind = _kind(writer), _kind(reader)
    if writer_kind == "union":
        # every branch the writer may have chosen must resolve
        return [p for branch in writer for p in reader_problems(reader, branch, path)]
    if reader_kind == "union":
        if any(not reader_problems(branch, writer, path) for branch in reader):
            return []
        return [f"{path or '<root>'}: no branch of the reader's union reads {_describe(writer)}"]
    where = path or "<root>"
    if reader_kind != writer_kind and (writer_kind, reader_kind) not in _PROMOTIONS:
        return [f"{where}: {_describe(writer)} cannot be read as {_describe(reader)}"]
    if _logical(reader) != _logical(writer):
        return [f"{where}: logical type changed from {_describe(writer)} to {_describe(reader)}"]
    if reader_kind in _NAMED and not _names_match(reader, writer):
        return [f"{where}: {_describe(writer)} cannot be read as {_describe(reader)}"]
    if reader_kind == "record":
        return _record_problems(reader, writer, path or reader["name"])
    if reader_kind == "enum":
        missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
        if missing and "default" not in reader:
            return [f"{where}: symbols {missing} are unknown to the reader and it has no default"]
        return []
    if reader_kind == "fixed" and reader["size"] != writer["size"]:
        return [f"{where}: fixed size changed from {writer['size']} to {reader['size']}"]
    if reader_kind == "array":
        return reader_problems(reader["items"], writer["items"], f"{path}[]")
    if reader_kind == "map":
        return reader_problems(reader["values"], writer["values"], f"{path}{{}}")
    return []


def full_problems(new: dict[str, Any], old: dict[str, Any]) -> list[str]:
    """Why ``new`` is not FULL-compatible with ``old`` (raw schemas; empty: it is)."""
    new_expanded, old_expanded = expand_schema(new), expand_schema(old)
    backward = reader_problems(new_expanded, old_expanded)
    forward = reader_problems(old_expanded, new_expanded)
    return [f"backward (new reads old): {p}" for p in backward] + [
        f"forward (old reads new): {p}" for p in forward
    ]


def history_problems(versions: Sequence[SchemaVersion]) -> list[str]:
    """FULL compatibility of every version with every earlier one (transitive)."""
    problems: list[str] = []
    for index, newer in enumerate(versions):
        for older in versions[:index]:
            problems.extend(
                f"{newer.name} v{newer.version} vs v{older.version}: {problem}"
                for problem in full_problems(newer.raw, older.raw)
            )
    return problems
