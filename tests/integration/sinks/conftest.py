"""Fixtures of the ClickHouse tests: the shared 18.16 server and chDB, side by side."""

from __future__ import annotations

import fcntl
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from common.settings import Settings
from sinks import rows as R
from sinks.db import ChdbDatabase, Database, NativeDatabase, connect
from sinks.errors import ClickHouseError
from sinks.migrate import migrate
from tests.synthetic import SyntheticData

from .sinkproc import wait_until


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


ROLES_DB = "lfr_roles_test"
# the local development passwords of users.xml (never used anywhere else)
LOCAL_USERS = {
    "clickhouse_ingest_user": "ingest",
    "clickhouse_ingest_password": "ingest-local-dev",
    "clickhouse_analyst_user": "analyst",
    "clickhouse_analyst_password": "analyst-local-dev",
}


def _can_read(db: NativeDatabase) -> bool:
    try:
        db.execute(f"SELECT count() FROM {ROLES_DB}.scans")  # noqa: S608 - fixed name
    except ClickHouseError:
        return False
    return True


@pytest.fixture
def roles(test_settings: Callable[..., Settings]) -> Iterator[Settings]:
    """Settings with the local users, and a freshly migrated ``lfr_roles_test``.

    18.16 has no wildcard in ``allow_databases``: users.xml grants the ingest and
    analyst users this one test database, so the tests that use it take a file
    lock and run one at a time.
    """
    lock_path = Path(tempfile.gettempdir()) / f"{ROLES_DB}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        settings = test_settings(clickhouse_database=ROLES_DB, sink_metrics_port=0, **LOCAL_USERS)
        admin = connect(settings, "admin", database="default")
        admin.execute(f"DROP DATABASE IF EXISTS {ROLES_DB}")
        migrate(admin, ROLES_DB)
        # a server started with an older users.xml picks the file up within seconds
        for role in ("ingest", "analyst"):
            db = connect(settings, role)
            wait_until(lambda db=db: _can_read(db), 30, f"users.xml granting {ROLES_DB}")
            db.close()
        try:
            yield settings
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {ROLES_DB}")
            admin.close()


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
