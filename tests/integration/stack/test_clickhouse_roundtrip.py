"""The same SQL runs on the real 18.16 server (clickhouse-driver) and on chDB (current engine)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import chdb
import pytest
from clickhouse_driver import Client

from tests.conftest import Stack

pytestmark = pytest.mark.integration

ROWS = [
    ("e1", "croydon", datetime(2025, 10, 1, 12, 0, 0, tzinfo=UTC), 120, 0.91),
    ("e2", "croydon", datetime(2025, 10, 1, 12, 0, 1, tzinfo=UTC), 5, 0.42),
    ("e3", "lewisham", datetime(2025, 10, 2, 8, 30, 0, tzinfo=UTC), 999, 0.77),
]
# 18.16 has neither DateTime64 nor LowCardinality: DateTime + a milliseconds column
DDL = """CREATE TABLE {db}.scans (
    event_id String, site_id String, captured_at DateTime, captured_ms UInt16,
    face_quality Float32
) ENGINE = ReplacingMergeTree() PARTITION BY toYYYYMMDD(captured_at) ORDER BY event_id"""
QUERY = """SELECT site_id, count() AS faces, round(avg(face_quality), 4) AS q,
    toString(min(captured_at)) AS first
FROM {db}.scans FINAL GROUP BY site_id ORDER BY site_id"""


def test_server_round_trip_matches_chdb(
    real_stack: Stack, clickhouse_database: Callable[[], str]
) -> None:
    db = clickhouse_database()
    client = Client(
        host=real_stack.settings.clickhouse_host, port=real_stack.settings.clickhouse_port
    )
    client.execute(DDL.format(db=db))
    columns = [list(col) for col in zip(*ROWS, strict=True)]
    client.execute(f"INSERT INTO {db}.scans VALUES", columns, columnar=True)
    # a redelivered row must collapse under FINAL
    client.execute(f"INSERT INTO {db}.scans VALUES", [ROWS[0]])
    on_server = client.execute(QUERY.format(db=db))
    version = client.execute("SELECT version()")[0][0]
    client.disconnect()

    session = chdb.session.Session()
    try:
        session.query(f"CREATE DATABASE {db}")
        session.query(DDL.format(db=db))
        values = ", ".join(
            f"('{e}', '{s}', toDateTime('{t:%Y-%m-%d %H:%M:%S}', 'UTC'), {ms}, {q})"
            for e, s, t, ms, q in [*ROWS, ROWS[0]]
        )
        session.query(f"INSERT INTO {db}.scans VALUES {values}")
        text = str(session.query(QUERY.format(db=db), "TabSeparated"))
    finally:
        session.close()
    on_chdb = [tuple(line.split("\t")) for line in text.strip().splitlines()]

    assert version.startswith("18.16"), version
    assert on_server == [
        ("croydon", 2, 0.665, "2025-10-01 12:00:00"),
        ("lewisham", 1, 0.77, "2025-10-02 08:30:00"),
    ]
    assert on_chdb == [tuple(str(v) for v in row) for row in on_server]
