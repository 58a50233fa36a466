"""The FULL-compatibility checker and ``lfr schemas check``, cross-checked with fastavro."""

from __future__ import annotations

import argparse
import copy
import io
import json
import shutil
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro.read import SchemaResolutionError

from common.settings import Settings
from schemas.check import check_schemas
from schemas.cli import run_check
from schemas.compat import full_problems, reader_problems
from schemas.registry import SCHEMA_DIR

BASE: dict[str, Any] = {
    "type": "record",
    "name": "R",
    "namespace": "lfr.v1",
    "fields": [
        {"name": "id", "type": "string", "doc": "Id."},
        {"name": "count", "type": "int", "doc": "Count."},
        {
            "name": "kind",
            "type": {"type": "enum", "name": "K", "symbols": ["A", "B"]},
            "doc": "Kind.",
        },
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}, "doc": "At."},
        {"name": "note", "type": ["null", "string"], "default": None, "doc": "Note."},
    ],
}
SAMPLE = {"id": "x", "count": 3, "kind": "B", "at": 1_700_000_000_000, "note": "n"}


def _changed(change: Any) -> dict[str, Any]:
    schema = copy.deepcopy(BASE)
    change(schema)
    return schema


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def _fastavro_reads(reader: dict[str, Any], writer: dict[str, Any], record: Any) -> bool:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(writer), record)
    out.seek(0)
    try:
        fastavro.schemaless_reader(
            out, fastavro.parse_schema(writer), fastavro.parse_schema(reader)
        )
    except SchemaResolutionError:
        return False
    return True


def _drop(name: str) -> Any:
    return lambda s: s["fields"].remove(_field(s, name))


def _set_type(name: str, new_type: Any) -> Any:
    return lambda s: _field(s, name).update(type=new_type)


def _add_field(spec: dict[str, Any]) -> Any:
    return lambda s: s["fields"].append(spec)


BREAKING = {
    "field without default removed": _drop("count"),
    "field without default added": _add_field({"name": "extra", "type": "long", "doc": "E."}),
    "type narrowed long->int": _set_type("at", "int"),
    "type widened int->long (old readers cannot)": _set_type("count", "long"),
    "enum symbol added without enum default": _set_type(
        "kind", {"type": "enum", "name": "K", "symbols": ["A", "B", "C"]}
    ),
    "logical type changed": _set_type("at", {"type": "long", "logicalType": "timestamp-micros"}),
    "string -> int": _set_type("id", "int"),
    "union made required": lambda s: _field(s, "note").update(type="string", default=""),
    "enum symbol added, default only in the new schema": _set_type(
        "kind", {"type": "enum", "name": "K", "symbols": ["A", "B", "C"], "default": "A"}
    ),
    "record renamed": lambda s: s.update(name="Renamed"),
}
COMPATIBLE = {
    "optional field added": _add_field(
        {"name": "extra", "type": ["null", "long"], "default": None, "doc": "E."}
    ),
    "optional field removed": _drop("note"),
    "doc changed": lambda s: _field(s, "id").update(doc="Another doc."),
}


@pytest.mark.parametrize("label", sorted(BREAKING))
def test_breaking_changes_are_caught(label: str) -> None:
    assert full_problems(_changed(BREAKING[label]), BASE), label


@pytest.mark.parametrize("label", sorted(COMPATIBLE))
def test_compatible_changes_pass(label: str) -> None:
    assert full_problems(_changed(COMPATIBLE[label]), BASE) == []


def test_enum_symbol_added_is_compatible_when_every_version_has_a_default() -> None:
    enum = {"type": "enum", "name": "K", "symbols": ["A", "B"], "default": "A"}
    old = _changed(_set_type("kind", enum))
    new = _changed(_set_type("kind", {**enum, "symbols": ["A", "B", "C"]}))
    assert full_problems(new, old) == []
    assert _fastavro_reads(old, new, {**SAMPLE, "kind": "C"})


@pytest.mark.parametrize(
    "label", ["field without default removed", "type narrowed long->int", "string -> int"]
)
def test_checker_agrees_with_fastavro_resolution(label: str) -> None:
    """Where our checker says 'new cannot read old' (or vice versa), fastavro fails too."""
    new = _changed(BREAKING[label])
    backward = not reader_problems(new, BASE)
    if not backward:
        assert not _fastavro_reads(new, BASE, SAMPLE)
    else:
        record = {k: v for k, v in SAMPLE.items() if k != "count"}
        assert not _fastavro_reads(BASE, new, record)


@pytest.mark.parametrize("label", ["optional field added", "optional field removed"])
def test_compatible_changes_resolve_in_fastavro_both_ways(label: str) -> None:
    new = _changed(COMPATIBLE[label])
    assert _fastavro_reads(new, BASE, SAMPLE)
    assert _fastavro_reads(BASE, new, {**SAMPLE, "extra": 5})


# --- lfr schemas check on the packaged files and on broken copies -----------


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return root


def _run(root: Path) -> int:
    return run_check(argparse.Namespace(root=root), Settings())


def test_packaged_schemas_pass_the_check() -> None:
    assert check_schemas() == []
    assert _run(SCHEMA_DIR) == 0


def test_check_fails_on_a_published_breaking_change(tmp_path: Path, capsys: Any) -> None:
    root = _copy(tmp_path)
    schema = json.loads((root / "DetectionEvent.avsc").read_text())
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "template_model"]
    text = json.dumps(schema)
    (root / "DetectionEvent.avsc").write_text(text)
    (root / "history" / "DetectionEvent" / "v2.avsc").write_text(text)
    assert _run(root) == 1
    assert "template_model" in capsys.readouterr().err


def test_check_fails_on_a_narrowed_type(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    schema = json.loads((root / "Alert.avsc").read_text())
    _field(schema, "watchlist_version")["type"] = "int"
    (root / "Alert.avsc").write_text(json.dumps(schema))
    (root / "history" / "Alert" / "v2.avsc").write_text(json.dumps(schema))
    problems = check_schemas(root)
    assert any("watchlist_version" in p and "forward" not in p for p in problems)


def test_check_fails_on_an_unpublished_change_and_a_missing_doc(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    schema = json.loads((root / "Scan.avsc").read_text())
    schema["fields"].append({"name": "lane", "type": ["null", "int"], "default": None})
    (root / "Scan.avsc").write_text(json.dumps(schema))
    problems = check_schemas(root)
    assert any("not in the history" in p for p in problems)
    assert any("Scan.lane: field has no doc" in p for p in problems)


def test_compatible_published_change_passes(tmp_path: Path) -> None:
    root = _copy(tmp_path)
    schema = json.loads((root / "Scan.avsc").read_text())
    schema["fields"].append(
        {"name": "lane", "type": ["null", "int"], "default": None, "doc": "Lane."}
    )
    (root / "Scan.avsc").write_text(json.dumps(schema))
    (root / "history" / "Scan" / "v2.avsc").write_text(json.dumps(schema))
    assert check_schemas(root) == []


def test_the_lfr_command_exits_non_zero(tmp_path: Path) -> None:
    from streams.cli import main

    root = _copy(tmp_path)
    (root / "history" / "Outcome" / "v1.avsc").unlink()
    (root / "history" / "Outcome" / "v3.avsc").write_text("{}")
    assert main(["schemas", "check", "--root", str(root)]) == 1
    assert main(["schemas", "check"]) == 0
