"""Strict Avro type checks run before encoding.

fastavro's writer coerces silently in places (a float written to a long is
truncated, a string written to an array becomes its characters), so encode
checks types first. The checks are compiled once per schema into tuples of
``(field, accepted types)`` so the common case is one ``isinstance`` per
field, which keeps encoding close to raw fastavro speed.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import numpy as np

from schemas.errors import EncodeError

Check = Callable[[Any, str], None]
RecordCheck = Callable[[Any], None]

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_NUMBER = (float, int, np.floating, np.integer)
_SIMPLE: dict[str, tuple[type, ...]] = {
    "null": (type(None),),
    "boolean": (bool,),
    "float": _NUMBER,
    "double": _NUMBER,
    "string": (str,),
    "bytes": (bytes, bytearray, memoryview),
}


def _fail(path: str, expected: str, value: object) -> None:
    # the value itself is never echoed: it may be a template or a subject id
    raise EncodeError(f"{path}: expected {expected}, got {type(value).__name__}")


def _simple_types(schema: Any) -> tuple[type, ...] | None:
    """Accepted Python types when one isinstance check is enough, else None."""
    if isinstance(schema, str):
        return _SIMPLE.get(schema)
    if isinstance(schema, list):
        accepted: list[type] = []
        for branch in schema:
            types = _simple_types(branch)
            if types is None:
                return None
            accepted.extend(types)
        return tuple(dict.fromkeys(accepted))
    if isinstance(schema, dict):
        kind = schema.get("type")
        if kind == "long" and schema.get("logicalType") == "timestamp-millis":
            return (int, datetime)
        if kind in _SIMPLE:
            return _SIMPLE[kind]
    return None


def _integer_check(bounds: tuple[int, int], timestamp: bool) -> Check:
    low, high = bounds

    def check(value: Any, path: str) -> None:
        if timestamp and isinstance(value, datetime):
            if value.tzinfo is None:
                raise EncodeError(f"{path}: naive datetime; instants must be timezone-aware")
            return
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            _fail(path, "an integer", value)
        if not low <= int(value) <= high:
            raise EncodeError(f"{path}: integer out of range")

    return check


def _enum_check(symbols: list[str]) -> Check:
    allowed = frozenset(symbols)

    def check(value: Any, path: str) -> None:
        if not isinstance(value, str):
            _fail(path, "an enum symbol", value)
        if value not in allowed:
            raise EncodeError(f"{path}: {value!r} is not one of {sorted(allowed)}")

    return check


def _array_check(items: Any) -> Check:
    item_check = compile_check(items)

    def check(value: Any, path: str) -> None:
        if not isinstance(value, list | tuple):
            _fail(path, "a list", value)
        for index, item in enumerate(value):
            item_check(item, f"{path}[{index}]")

    return check


def _union_check(branches: list[Any]) -> Check:
    checks = [compile_check(branch) for branch in branches]

    def check(value: Any, path: str) -> None:
        for branch_check in checks:
            try:
                branch_check(value, path)
            except EncodeError:
                continue
            return
        _fail(path, "a value of one of the union's branches", value)

    return check


def _types_check(types: tuple[type, ...], label: str) -> Check:
    def check(value: Any, path: str) -> None:
        if not isinstance(value, types):
            _fail(path, label, value)

    return check


def compile_check(schema: Any) -> Check:
    """A checker for one (expanded) Avro type: ``check(value, path)`` raises EncodeError."""
    if isinstance(schema, list):
        return _union_check(schema)
    kind = schema if isinstance(schema, str) else schema.get("type")
    if isinstance(kind, dict | list):
        return compile_check(kind)
    is_timestamp = isinstance(schema, dict) and schema.get("logicalType") == "timestamp-millis"
    if kind == "int":
        return _integer_check(_INT32, False)
    if kind == "long":
        return _integer_check(_INT64, is_timestamp)
    if kind in _SIMPLE:
        return _types_check(_SIMPLE[kind], kind)
    if kind == "enum":
        return _enum_check(schema["symbols"])
    if kind == "array":
        return _array_check(schema["items"])
    if kind == "record":
        record_check = compile_record_check(schema)

        def check(value: Any, path: str) -> None:
            record_check(value)

        return check
    raise EncodeError(f"unsupported Avro type in schema: {kind!r}")


def compile_record_check(schema: Mapping[str, Any]) -> RecordCheck:
    """A checker for a whole record, compiled once per schema version."""
    record_name = str(schema.get("name", "record"))
    fast: list[tuple[str, tuple[type, ...]]] = []
    slow: list[tuple[str, Check, bool]] = []
    for field in schema["fields"]:
        name = field["name"]
        types = _simple_types(field["type"])
        is_plain_long = field["type"] in ("long", {"type": "long"})
        if types is not None and "default" not in field and not is_plain_long:
            fast.append((name, types))
        else:
            slow.append((name, compile_check(field["type"]), "default" in field))
    fast_names = tuple(name for name, _ in fast)
    fast_types = tuple(types for _, types in fast)
    # one C-level call fetches every fast field (itemgetter of one name returns a scalar)
    fetch = operator.itemgetter(*fast_names) if len(fast_names) > 1 else None
    slow_fields = tuple(slow)
    missing = object()

    def explain(record: Mapping[str, Any]) -> None:
        for name, types in fast:
            if name not in record:
                raise EncodeError(f"{record_name}.{name}: missing field")
            if not isinstance(record[name], types):
                label = " or ".join(t.__name__ for t in types)
                _fail(f"{record_name}.{name}", label, record[name])

    def check(record: Any) -> None:
        if type(record) is not dict and not isinstance(record, Mapping):
            _fail(record_name, "a mapping", record)
        if fetch is None:
            explain(record)
        else:
            try:
                values = fetch(record)
            except KeyError:
                explain(record)
            if not all(map(isinstance, values, fast_types)):
                explain(record)
        for name, field_check, has_default in slow_fields:
            value = record.get(name, missing)
            if value is missing:
                if has_default:
                    continue
                raise EncodeError(f"{record_name}.{name}: missing field")
            field_check(value, f"{record_name}.{name}")

    return check
