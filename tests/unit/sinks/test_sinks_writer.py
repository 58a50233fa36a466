"""One batch through the writer against an in-memory table: rows, rejections, what commits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from common.settings import Settings
from schemas.codec import encode
from sinks.batching import Batch, Message, PartitionBuffer
from sinks.db import server_message
from sinks.errors import ClickHouseRejected
from sinks.features import ServerFeatures, features_for
from sinks.sink import BatchWriter, SinkOptions, consumer_config, routes_for
from tests.synthetic import generate


class RefusingTable:
    """Stores inserted blocks; refuses any block holding an event id it was told to refuse."""

    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse
        self.rows: list[dict[str, Any]] = []

    @property
    def features(self) -> ServerFeatures:
        return features_for("18.16.1")

    def execute(self, sql: str) -> list[tuple[Any, ...]]:
        return []

    def insert(self, table: str, columns: Sequence[str], data: Sequence[Sequence[Any]],
               dedup_token: str | None = None) -> None:  # fmt: skip
        rows = [dict(zip(columns, values, strict=True)) for values in zip(*data, strict=True)]
        if any(r["event_id"] in self.refuse for r in rows):
            raise ClickHouseRejected("Code: 6. Cannot parse", 6)
        self.rows.extend(rows)


def _batch(settings: Settings, scans: list[dict[str, Any]], extra: list[bytes | None]) -> Batch:
    batch = Batch(settings.topic_scans, 0, 0, 0.0)
    values = [encode("Scan", s) for s in scans] + extra
    for offset, value in enumerate(values):
        batch.messages.append(Message(offset, b"site", value, 1_000_000 + offset))
    return batch


def test_rejected_and_undecodable_rows_leave_the_committed_ones_exact() -> None:
    settings = Settings()
    scans = generate(9, deployments=1, scans_per_deployment=12, alerts_per_deployment=0).scans
    table = RefusingTable({scans[3]["event_id"], scans[8]["event_id"]})
    writer = BatchWriter(table, "lfr", routes_for(settings), frozenset())
    outcome = writer.write(_batch(settings, scans, [b"\x00garbage", None]))

    assert outcome.inserted == 10 == len(table.rows)
    assert outcome.skipped == 1  # the tombstone
    assert sorted(d["reason"] for d in outcome.dead) == [
        "rejected_by_clickhouse", "rejected_by_clickhouse", "undecodable"
    ]  # fmt: skip
    kept = [i for i in range(12) if i not in (3, 8)]
    # per-row metrics see exactly the rows that were stored
    assert outcome.timestamps_ms == [1_000_000 + i for i in kept]
    stored = [r["captured_at"] * 1000 + r["captured_at_ms"] for r in table.rows]
    assert outcome.captured_ms == stored
    assert outcome.days == {scans[i]["captured_at"].date().isoformat() for i in kept}


def test_first_uncommitted_offset_is_where_lag_counts_from() -> None:
    buffer = PartitionBuffer("t", 0, size=10)
    assert buffer.first_uncommitted() is None
    for offset in range(7, 14):
        buffer.add(Message(offset, None, b"v", 0), now=0.0)
    assert [(b.first, b.last) for b in buffer.sealed] == [(7, 9)]
    assert buffer.first_uncommitted() == 7
    buffer.sealed.pop(0)
    assert buffer.first_uncommitted() == 10
    buffer.seal()
    buffer.sealed.pop(0)
    assert buffer.first_uncommitted() == 14


def test_consumer_fetches_whole_batches() -> None:
    options = SinkOptions(batch_size=20_000)
    config = consumer_config(options)
    assert config["max_poll_records"] == 20_000
    assert config["enable_auto_commit"] is False
    # one partition fetch holds a whole batch of ~150-byte scans, and fits in a response
    assert config["max_partition_fetch_bytes"] >= 20_000 * 150
    assert config["max_partition_fetch_bytes"] <= config["fetch_max_bytes"]


def test_server_message_keeps_the_reason_and_drops_the_stack_trace() -> None:
    message = "DB::Exception: Cannot insert into table in readonly mode. Stack trace:\n\n0. x"
    assert server_message(164, message) == (
        "Code: 164. DB::Exception: Cannot insert into table in readonly mode."
    )
    assert server_message(None, "") == "Code: None. "
