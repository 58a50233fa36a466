"""Dead letters redact by the configured topic names: a renamed watchlist topic leaks nothing.

The harness names every topic ``t<tag>.<name>`` — never the defaults — so
the worker, the DLQ and the sink's ClickHouse rows all see a watchlist topic
whose name no default list could know.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas.codec import encode
from sinks.db import NativeDatabase
from sinks.migrate import migrate
from tests.integration.sinks.sinkproc import committed_all, kill, start_sink, wait_until

from .conftest import WorkerHarness

pytestmark = [pytest.mark.integration]

SUBJECTS = ("subject-secret-1", "subject-secret-2")


def _entry(subject: str) -> dict:
    # decodes, but fails validation: an ADD without a template
    now = datetime.now(UTC).replace(microsecond=0)
    return {"subject_id": subject, "watchlist_id": "wl-9", "op": "ADD",
            "category": "missing", "wanted_since": now, "template": None, "template_model": "m",
            "updated_at": now}  # fmt: skip


def test_renamed_watchlist_topic_no_subject_id_in_dead_letters_or_rows(
    harness: WorkerHarness,
) -> None:
    h, s = harness, harness.settings
    assert s.topic_watchlist != "lfr.watchlist"
    h.send(s.topic_watchlist, f"wl-9:{SUBJECTS[0]}", None, b"\x00not avro")
    h.send(
        s.topic_watchlist,
        f"wl-9:{SUBJECTS[1]}",
        None,
        encode("WatchlistEntry", _entry(SUBJECTS[1])),
    )
    h.flush()
    h.start_worker()
    letters = h.wait_for(s.topic_dlq, "DeadLetter", lambda r: len(r) >= 2)
    assert {d["source_topic"] for d in letters} == {s.topic_watchlist}
    assert {d["key"] for d in letters} == {"wl-9:<redacted>"}
    raw = b"".join((m.key or b"") + (m.value or b"") for m in h.read(s.topic_dlq))
    assert not any(subject.encode() in raw for subject in SUBJECTS)

    db = NativeDatabase(**s.clickhouse_config() | {"database": "default"})
    name = s.clickhouse_database
    migrate(db, name)
    sink_settings = s.model_copy(update={"sink_metrics_port": 0})
    proc = start_sink(sink_settings, h.tmp_path / "sink.log")
    try:
        wait_until(lambda: db.execute(f"SELECT count() FROM {name}.dead_letters")[0][0] >= 2,
                   120, "the dead letters in ClickHouse")  # fmt: skip
        wait_until(lambda: committed_all(sink_settings), 60, "the sink to commit")
        tables = [r[0] for r in db.execute(
            f"SELECT name FROM system.tables WHERE database = '{name}' AND engine NOT LIKE '%View'"
        )]  # fmt: skip
        for table in tables:
            for row in db.execute(f"SELECT * FROM {name}.{table}"):  # noqa: S608
                text = repr(row)
                assert not any(subject in text for subject in SUBJECTS), (table, row)
        keys = {r[0] for r in db.execute(f"SELECT DISTINCT key FROM {name}.dead_letters")}
        assert keys == {"wl-9:<redacted>"}
    finally:
        kill(proc)
        db.execute(f"DROP DATABASE IF EXISTS {name}")
        db.close()
