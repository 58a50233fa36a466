"""The sink's routes come from the topic catalogue: renamed topics, every row table, no extras."""

from __future__ import annotations

import dataclasses
import re
from importlib import resources

import pytest

from common.settings import Settings
from sinks import sink
from streams.topics import CATALOGUE


def test_routes_follow_the_settings_topic_names() -> None:
    settings = Settings(topic_scans="site-a.scans", topic_dlq="site-a.dead")
    routes = sink.routes_for(settings)
    assert routes["site-a.scans"].table == "scans"
    assert routes["site-a.dead"].is_dead_letter_topic
    assert "lfr.scans" not in routes
    # the biometric inputs are never read by the sink
    assert settings.topic_detections not in routes
    assert settings.topic_watchlist not in routes


def test_every_row_table_has_exactly_one_catalogue_topic() -> None:
    tables = [t.sink_table for t in CATALOGUE if t.sink_table is not None]
    assert sorted(tables) == sorted(set(tables))
    assert set(tables) == set(sink.TABLE_ROUTES)
    rows_sql = resources.files("sinks").joinpath("migrations/001_rows.sql").read_text()
    assert set(tables) == set(re.findall(r"CREATE TABLE IF NOT EXISTS \{db\}\.(\w+)", rows_sql))


def test_a_catalogue_record_that_is_not_the_tables_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wrong = tuple(
        dataclasses.replace(t, record="Alert") if t.sink_table == "scans" else t for t in CATALOGUE
    )
    monkeypatch.setattr(sink, "CATALOGUE", wrong)
    with pytest.raises(ValueError, match="carries Alert, but table scans is built from Scan"):
        sink.routes_for(Settings())
