"""``lfr schemas check``: the contract rules CI enforces on the schema files.

- each of the project's records has a ``<Name>.avsc`` in namespace ``lfr.v1``;
- every field, at any depth, has a non-empty ``doc``;
- every version is FULL-compatible with every earlier version;
- the current file is recorded in ``history/<Name>/`` (an unpublished change fails);
- no two records share a fingerprint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from schemas.compat import history_problems
from schemas.errors import SchemaError
from schemas.registry import NAMESPACE, RECORD_NAMES, SCHEMA_DIR, load_schema_set


def _undocumented(schema: Any, path: str) -> list[str]:
    if isinstance(schema, list):
        return [p for branch in schema for p in _undocumented(branch, path)]
    if not isinstance(schema, dict):
        return []
    if schema.get("type") == "record":
        problems = []
        for field in schema.get("fields", ()):
            field_path = f"{path}.{field.get('name')}"
            if not str(field.get("doc", "")).strip():
                problems.append(f"{field_path}: field has no doc")
            problems.extend(_undocumented(field.get("type"), field_path))
        return problems
    if schema.get("type") == "array":
        return _undocumented(schema.get("items"), path)
    if schema.get("type") == "map":
        return _undocumented(schema.get("values"), path)
    return _undocumented(schema["type"], path) if isinstance(schema.get("type"), dict) else []


def check_schemas(root: Path = SCHEMA_DIR) -> list[str]:
    """Every rule the schema files break (empty: all good)."""
    try:
        schema_set = load_schema_set(root)
    except SchemaError as exc:
        return [str(exc)]
    problems = [
        f"{name}: missing {name}.avsc" for name in RECORD_NAMES if name not in schema_set.versions
    ]
    owners: dict[bytes, str] = {}
    for name, versions in schema_set.versions.items():
        for version in versions:
            label = f"{name} v{version.version} ({version.path.name})"
            namespace = version.parsed["name"].rpartition(".")[0]
            if namespace != NAMESPACE:
                problems.append(f"{label}: namespace {namespace!r}, expected {NAMESPACE!r}")
            problems.extend(f"{label}: {p}" for p in _undocumented(version.raw, name))
            owner = owners.setdefault(version.fingerprint, name)
            if owner != name:
                problems.append(f"{label}: same fingerprint as {owner}")
        latest = versions[-1]
        if not latest.published:
            problems.append(
                f"{name}: {name}.avsc is not in the history; publish it as "
                f"history/{name}/v{latest.version}.avsc"
            )
        problems.extend(history_problems(versions))
    return problems
