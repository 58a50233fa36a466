"""The migrator: numbered SQL files applied once, recorded in schema_migrations.

Safe to run twice and from two processes at once: every statement is
idempotent (``IF NOT EXISTS``), the record table is a ReplacingMergeTree read
with FINAL, and a duplicate-object error from a racing peer is accepted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from sinks.db import Database, sql_literal
from sinks.ddl import Migration, check_identifier, parse_file_name, render, split_statements
from sinks.errors import ClickHouseError, ClickHouseRefused, ClickHouseUnavailable, MigrationError

log = logging.getLogger(__name__)

# Error codes a peer migrator racing this one can cause: the object exists.
_ALREADY_EXISTS = {15, 44, 57, 82}


def load_migrations() -> list[Migration]:
    """Every migration shipped in ``sinks/migrations``, in order."""
    found: list[Migration] = []
    for entry in resources.files("sinks.migrations").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        version, name = parse_file_name(entry.name)
        found.append(Migration(version, name, entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration numbers: {versions}")
    return found


@dataclass(frozen=True)
class MigrationResult:
    """What one run did."""

    applied: list[int]
    already: list[int]
    server_version: str


def bootstrap_sql(database: str) -> list[str]:
    """Statements creating the database and the record table."""
    db = check_identifier(database)
    return [
        f"CREATE DATABASE IF NOT EXISTS {db}",
        f"CREATE TABLE IF NOT EXISTS {db}.schema_migrations ("
        " version UInt32, name String, checksum String,"
        " applied_at DateTime('UTC'), server_version String"
        ") ENGINE = ReplacingMergeTree() ORDER BY version",
    ]


def applied_migrations(db: Database, database: str) -> dict[int, str]:
    """Applied version -> checksum."""
    rows = db.execute(
        f"SELECT version, checksum FROM {check_identifier(database)}.schema_migrations FINAL"  # noqa: S608
    )
    return {int(v): str(c) for v, c in rows}


# environment causes that no migration statement is to blame for
_NOT_THE_MIGRATION = ("authentication", "tls", "unreachable", "timeout", "unknown_database")


def _run(db: Database, statement: str) -> None:
    try:
        db.execute(statement)
    except ClickHouseError as exc:
        if exc.code in _ALREADY_EXISTS or "already exists" in str(exc):
            log.info("object already exists (a peer migrator?): %s", str(exc)[:120])
            return
        if isinstance(exc, ClickHouseRefused) and exc.cause in _NOT_THE_MIGRATION:
            raise  # the login or the network, not the statement: say so as it is
        raise MigrationError(f"migration statement failed: {exc}") from exc


def migrate(
    db: Database, database: str, migrations: list[Migration] | None = None
) -> MigrationResult:
    """Apply every pending migration for this server's features."""
    migrations = load_migrations() if migrations is None else migrations
    for statement in bootstrap_sql(database):
        _run(db, statement)
    done = applied_migrations(db, database)
    applied: list[int] = []
    already: list[int] = []
    features = db.features
    for migration in migrations:
        if migration.version in done:
            if done[migration.version] != migration.checksum:
                raise MigrationError(
                    f"migration {migration.version:03d}_{migration.name} was edited after it "
                    "was applied; add a new migration instead"
                )
            already.append(migration.version)
            continue
        for statement in split_statements(render(migration.sql, features, database)):
            _run(db, statement)
        db.execute(
            f"INSERT INTO {database}.schema_migrations "
            "(version, name, checksum, applied_at, server_version) "
            f"SELECT {migration.version}, {sql_literal(migration.name)}, "
            f"{sql_literal(migration.checksum)}, now(), {sql_literal(features.version_text)}"
        )
        log.info("applied migration %03d_%s", migration.version, migration.name)
        applied.append(migration.version)
    return MigrationResult(applied, already, features.version_text)


def wait_for_server(
    connect: Callable[[], Database], wait_s: float, sleep: Callable[[float], None] = time.sleep
) -> Database:
    """A connected database, retrying for up to ``wait_s`` seconds while it is down."""
    deadline = time.monotonic() + wait_s
    delay = 0.5
    while True:
        db = connect()
        try:
            db.execute("SELECT 1")
            return db
        except ClickHouseUnavailable as exc:
            if time.monotonic() >= deadline:
                raise
            log.warning("ClickHouse not reachable yet (%s); retrying in %.1fs", exc, delay)
            sleep(delay)
            delay = min(delay * 2, 5.0)
