"""Fixtures of the ClickHouse tests: the shared 18.16 server and chDB, side by side."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import Any

import pytest

from sinks import rows as R
from sinks.db import ChdbDatabase, Database, NativeDatabase
from sinks.synthetic import SyntheticData


@pytest.fixture(scope="module")
def chdb_db() -> Iterator[ChdbDatabase]:
    """chDB (the current engine, in-process) with its data in a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="lfr-chdb-") as path:
        db = ChdbDatabase(path)
        yield db
        db.close()


@pytest.fixture
def native_db(real_stack: Any) -> Iterator[NativeDatabase]:
    """A connection to the shared 18.16 server."""
    db = NativeDatabase(host=real_stack.settings.clickhouse_host,
                        port=real_stack.settings.clickhouse_port)  # fmt: skip
    yield db
    db.close()


@pytest.fixture
def databases(native_db: NativeDatabase, chdb_db: ChdbDatabase) -> Iterator[
    list[tuple[str, Database, str]]
]:  # fmt: skip
    """``(label, db, database name)`` for the 18.16 server and chDB; dropped afterwards."""
    name = f"lfr_test_{uuid.uuid4().hex[:8]}"
    pairs: list[tuple[str, Database, str]] = [("18.16", native_db, name), ("chdb", chdb_db, name)]
    yield pairs
    for _, db, database in pairs:
        db.execute(f"DROP DATABASE IF EXISTS {database}")


def load(db: Database, database: str, data: SyntheticData, tables: tuple[str, ...] = (
        "operation_windows", "scans", "alerts", "outcomes")) -> None:  # fmt: skip
    """Insert the generated records as the sink would (mapped, columnar, one block each)."""
    specs = {"operation_windows": (R.OPERATION_WINDOWS, data.operations),
             "scans": (R.SCANS, data.scans), "alerts": (R.ALERTS, data.alerts),
             "outcomes": (R.OUTCOMES, data.outcomes)}  # fmt: skip
    for table in tables:
        spec, records = specs[table]
        rows = [spec.map_record(r) for r in records]
        db.insert(f"{database}.{spec.name}", spec.columns, R.columnar(spec.columns, rows))


def normalise(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows with dates and datetimes as text, so the driver's and chDB's types compare."""

    def cell(v: Any) -> Any:
        if isinstance(v, datetime):
            return v.strftime("%Y-%m-%d %H:%M:%S")
        if isinstance(v, date):
            return v.isoformat()
        if isinstance(v, list | tuple):
            return tuple(cell(x) for x in v)
        return v

    return sorted((tuple(cell(v) for v in r) for r in rows), key=repr)


QueryRunner = Callable[[Database, str], list[tuple[Any, ...]]]
