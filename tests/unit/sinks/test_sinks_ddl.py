"""DDL rendering by server version: pure text transformations."""

from __future__ import annotations

import pytest

from sinks.ddl import Migration, parse_file_name, render, split_statements
from sinks.errors import MigrationError
from sinks.features import features_for, parse_version
from sinks.migrate import load_migrations

SQL = (
    "CREATE TABLE IF NOT EXISTS {db}.t (a LowCardinality(String), b String)\n"
    "ENGINE = ReplacingMergeTree() ORDER BY a\n"
    "{ttl:b_at + INTERVAL 31 DAY}\n"
    "SETTINGS index_granularity = 8192{dedup_window};\n"
)


def test_old_server_gets_plain_types_and_no_optional_clauses() -> None:
    text = render(SQL, features_for("18.16.1"), "lfr")
    assert "LowCardinality" not in text
    assert "TTL" not in text
    assert "non_replicated_deduplication_window" not in text
    assert "lfr.t (a String, b String)" in text


def test_current_server_gets_every_feature() -> None:
    text = render(SQL, features_for("24.8.1.1"), "lfr")
    assert "a LowCardinality(String)" in text
    assert "TTL b_at + INTERVAL 31 DAY" in text
    assert "index_granularity = 8192, non_replicated_deduplication_window = 1000" in text


@pytest.mark.parametrize(
    ("version", "low_cardinality", "ttl", "token"),
    [("18.16.1", False, False, False), ("19.6.2", False, False, False),
     ("21.8.1", True, True, False), ("22.2.1", True, True, True),
     ("26.9.2.1", True, True, True)],
)  # fmt: skip
def test_features_follow_version(version: str, low_cardinality: bool, ttl: bool,
                                 token: bool) -> None:  # fmt: skip
    f = features_for(version)
    assert (f.low_cardinality, f.ttl, f.dedup_token) == (low_cardinality, ttl, token)
    assert f.version == parse_version(version)


def test_database_name_must_be_an_identifier() -> None:
    with pytest.raises(MigrationError):
        render(SQL, features_for("18.16.1"), "lfr; DROP DATABASE x")


def test_unknown_marker_is_refused() -> None:
    with pytest.raises(MigrationError):
        render("SELECT {nosuch}", features_for("18.16.1"), "lfr")


def test_split_statements_drops_comments_and_keeps_order() -> None:
    text = "-- c\nCREATE TABLE a (x UInt8)\nENGINE = Log;\n\nCREATE VIEW v AS SELECT 1;\n"
    assert split_statements(text) == [
        "CREATE TABLE a (x UInt8)\nENGINE = Log",
        "CREATE VIEW v AS SELECT 1",
    ]


def test_file_names_and_checksums() -> None:
    assert parse_file_name("007_more_views.sql") == (7, "more_views")
    with pytest.raises(MigrationError):
        parse_file_name("7_views.sql")
    assert Migration(1, "a", "x").checksum != Migration(1, "a", "y").checksum


def test_shipped_migrations_are_numbered_and_render_on_both_ends() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    for m in migrations:
        for version in ("18.16.1", "26.9.2.1"):
            statements = split_statements(render(m.sql, features_for(version), "lfr"))
            assert statements
            idempotent = [
                "IF NOT EXISTS" in s or s.startswith("DROP TABLE IF EXISTS") for s in statements
            ]
            assert all(idempotent), "every statement idempotent (a view is replaced by drop)"
