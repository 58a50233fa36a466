"""Every stage of the worker driven without a broker: records in, outputs, dead letters, tables.

The records are encoded as producers write them and go through the same
input adapter and stage functions as in the worker; :class:`MemoryRuntime`
stands where the Faust runtime produces outputs and writes tables.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from schemas.batch_validation import check_detections
from schemas.codec import encode
from schemas.deadletter import reason_for
from schemas.errors import SchemaError
from schemas.templates import template_to_bytes
from schemas.validation import validate
from streams.worker.adjudications import (
    ADJUDICATIONS,
    PENDING_TABLE,
    expire_orphans,
    on_adjudications,
    on_alerts,
)
from streams.worker.deletion import DeletionPolicy
from streams.worker.detections import (
    DETECTIONS,
    SITE_CLOCK_TABLE,
    DetectionContext,
    process_batch,
    stage_result,
)
from streams.worker.errors import WorkerError
from streams.worker.expiry import ALERTS_TABLE, OUTCOME_AT, STORED_AT, AlertExpiry, expire_alerts
from streams.worker.instants import to_millis
from streams.worker.pseudonym import Pseudonymiser
from streams.worker.reference import ReferenceData, read_entries, read_windows
from streams.worker.snapshot import NEVER
from streams.worker.source import Input, KeyRule, SourceRecord, admit, admit_batch
from streams.worker.windows import OPERATIONS, WINDOWS_TABLE, apply_operations, site_from_state

from .conftest import T0, detection, unit, watchlist_record, window_record
from .memory import MemoryRuntime, record

NOW_MS = to_millis(T0) + 3_600_000
SCAN = {"event_id": "e", "deployment_id": "D1", "site_id": "S1", "camera_id": "c1",
        "captured_at": T0, "face_quality": 0.9, "matched": False}  # fmt: skip


def operation(key: str | None = "S1", **overrides: Any) -> Any:
    return record("lfr.operations", key, encode("OperationWindow", window_record(**overrides)))


def entry(subject: str, seed: int | None, key: str | None = None, **overrides: Any) -> Any:
    vec = None if seed is None else unit(seed)
    value = encode("WatchlistEntry", watchlist_record(subject, vec, **overrides))
    return record("lfr.watchlist", f"W1:{subject}" if key is None else key, value)


def adjudication_of(alert_id: str, minutes: int = 12, key: str | None = None, **kw: Any) -> Any:
    value = {
        "alert_id": alert_id, "officer_ref": "o1", "verdict": "TRUE_MATCH", "confirmed": True,
        "outcome": "ARREST", "located_at": T0 + timedelta(minutes=10),
        "decided_at": T0 + timedelta(minutes=minutes),
    }  # fmt: skip
    value.update(kw)
    return record("lfr.adjudications", alert_id if key is None else key,
                  encode("Adjudication", value))  # fmt: skip


# --- the input adapter --------------------------------------------------------


def test_the_adapter_admits_decoded_validated_correctly_keyed_records() -> None:
    admitted, letters = admit_batch(
        [operation(), operation(key="S2"), operation(key=None),
         record("lfr.operations", "S1", b"\xc3\x01junk"),
         record("lfr.operations", "S1", encode("Scan", SCAN)),
         operation(match_threshold=1.5)],
        OPERATIONS,
    )  # fmt: skip
    assert [a.value["site_id"] for a in admitted if a.value] == ["S1"]
    assert [letter["reason"] for letter in letters] == [
        "invalid", "invalid", "undecodable", "unknown_fingerprint", "invalid"
    ]  # fmt: skip
    assert all(letter["stage"] == "worker.operations" for letter in letters)


def test_tombstones_pass_only_where_the_input_admits_them() -> None:
    tombstone = record("lfr.operations", "S1", None)
    assert admit(tombstone, OPERATIONS).value is None
    strict = Input(OPERATIONS.topic, "worker.test", key=KeyRule.ANY)
    _, letters = admit_batch([tombstone], strict)
    assert [letter["reason"] for letter in letters] == ["invalid"]


def outcomes(records: list[Any], spec: Input) -> list[Any]:
    """Each record's verdict when admitted on its own: its value, or its dead letter's reason."""
    verdicts: list[Any] = []
    for item in records:
        try:
            verdicts.append(admit(item, spec).value)
        except (SchemaError, WorkerError) as exc:
            verdicts.append(reason_for(exc))
    return verdicts


def batch_outcomes(records: list[Any], spec: Input) -> list[Any]:
    """The same verdicts from one ``admit_batch`` call; dead letters come in record order."""
    numbered = [dataclasses.replace(item, offset=i) for i, item in enumerate(records)]
    admitted, letters = admit_batch(numbered, spec)
    by_offset = {a.record.offset: a.value for a in admitted}
    by_offset.update({letter["source_offset"]: letter["reason"] for letter in letters})
    offsets = [letter["source_offset"] for letter in letters]
    assert offsets == sorted(offsets)
    return [by_offset[i] for i in range(len(records))]


def test_detections_are_admitted_with_one_batch_check_and_the_verdicts_of_validate() -> None:
    good = detection(unit(1))
    records = [
        good,
        detection(unit(2), template=template_to_bytes(unit(3) * 2)),  # not a unit vector
        SourceRecord("lfr.detections", 0, 10**8, b"S1", None, 1),  # null: undecodable
        SourceRecord("lfr.detections", 0, 10**8 + 1, None, good.value, 1),  # no key: fine
        record("lfr.detections", "S1", b"\xc3\x01junk"),
        detection(unit(4), at=T0 + timedelta(days=10**4)),  # captured far in the future
        detection(unit(5), event_id=" "),
    ]
    calls: list[int] = []

    def counted(values: Any) -> Any:
        calls.append(len(values))
        return check_detections(values)

    verdicts = batch_outcomes(records, dataclasses.replace(DETECTIONS, batch_check=counted))
    assert calls == [5]  # one call for the five records that decode
    expected = outcomes(records, DETECTIONS)
    assert verdicts == expected
    assert [v if isinstance(v, str) else "ok" for v in verdicts] == [
        "ok", "invalid", "undecodable", "ok", "undecodable", "invalid", "invalid"
    ]  # fmt: skip


def test_a_batch_check_keeps_the_key_rule_and_the_order_of_dead_letters() -> None:
    records = [
        operation(), operation(key="S2"), operation(key=None),
        record("lfr.operations", "S1", b"\xc3\x01junk"),
        record("lfr.operations", "S1", encode("Scan", SCAN)),
        operation(match_threshold=1.5), record("lfr.operations", "S1", None),
    ]  # fmt: skip

    def one_by_one(values: Any) -> list[SchemaError | None]:
        errors: list[SchemaError | None] = []
        for value in values:
            try:
                validate("OperationWindow", value)
                errors.append(None)
            except SchemaError as exc:
                errors.append(exc)
        return errors

    batched = dataclasses.replace(OPERATIONS, validate=False, batch_check=one_by_one)
    assert batch_outcomes(records, batched) == outcomes(records, OPERATIONS)


def test_a_biometric_input_dead_letters_no_payload_and_no_subject() -> None:
    runtime = MemoryRuntime()
    ref = ReferenceData(DeletionPolicy(grace_s=120.0))
    bad = record("lfr.watchlist", "W1:subject-secret", b"\xc3\x01" + b"\x07" * 40)
    runtime.run(read_entries, [bad], ref, 0.0)
    (letter,) = runtime.records("dlq")
    assert letter["payload"] is None and letter["payload_sha256"]
    assert "subject-secret" not in str(letter)


# --- operations -------------------------------------------------------------------


def test_operations_stage_fills_the_windows_table_and_dead_letters_the_rest() -> None:
    runtime = MemoryRuntime()
    first = operation()
    second = operation(deployment_id="D2", starts_at=T0 + timedelta(hours=3),
                       ends_at=T0 + timedelta(hours=4))  # fmt: skip
    unauthorised = operation(deployment_id="D3", authorised_by=None, authorised_at=None)
    tombstone = record("lfr.operations", "S1", None)
    runtime.run(apply_operations, [first, second, unauthorised, tombstone],
                runtime.table(WINDOWS_TABLE))  # fmt: skip
    site = site_from_state(runtime.table(WINDOWS_TABLE)[b"S1"])
    assert sorted(site) == ["D1", "D2"]  # the second saw the first within the batch
    assert runtime.reasons() == ["invalid"]
    assert runtime.produced.keys() == {"dlq"}


def test_an_older_window_version_leaves_the_table_as_it_was() -> None:
    runtime = MemoryRuntime()
    runtime.run(apply_operations, [operation(status="ENDED", ends_at=T0 + timedelta(hours=1),
                                             updated_at=T0 + timedelta(hours=1))],
                runtime.table(WINDOWS_TABLE))  # fmt: skip
    runtime.run(apply_operations, [operation()], runtime.table(WINDOWS_TABLE))
    assert site_from_state(runtime.table(WINDOWS_TABLE)[b"S1"])["D1"].status == "ENDED"


# --- broadcast reference data ---------------------------------------------------------


def test_reference_stages_apply_windows_and_entries_in_order() -> None:
    ref = ReferenceData(DeletionPolicy(grace_s=120.0))
    assert read_windows([operation(), operation(key="S9")], ref, 0.0) == []
    assert [w.deployment_id for w in ref.windows_of("S1")] == ["D1"]
    assert ref.windows_of("S9") == []  # mis-keyed: skipped here, dead-lettered by the stage
    result = read_entries([entry("s1", 1), entry("s2", 2), entry("s2", None),
                                record("lfr.watchlist", None, b"x")], ref, 0.0)  # fmt: skip
    assert [letter["reason"] for letter in result.dead_letters] == ["invalid"]
    snapshot = ref.snapshot("W1")
    assert snapshot is not None and len(snapshot) == 2
    assert int((snapshot.removed_at_ms < NEVER).sum()) == 1  # s2 removed, in order
    ended = operation(status="ENDED", ends_at=T0 + timedelta(hours=1),
                      updated_at=T0 + timedelta(hours=1))  # fmt: skip
    ((window, _retirement),) = read_windows([ended], ref, 1.0)
    assert window.watchlist_id == "W1"


# --- detections -> alerts -> adjudications -> outcomes ---------------------------------


def worker_state() -> tuple[MemoryRuntime, ReferenceData, DetectionContext]:
    runtime = MemoryRuntime()
    ref = ReferenceData(DeletionPolicy(grace_s=120.0))
    read_windows([operation()], ref, 0.0)
    read_entries([entry("s1", 1), entry("s2", 2)], ref, 0.0)
    clock = runtime.table(SITE_CLOCK_TABLE)
    ctx = DetectionContext(
        windows_of=ref.windows_of,
        watchlist=ref.snapshot,
        high_water_of=lambda site: clock.get(site.encode()),
        pseudonymiser=Pseudonymiser(b"seam"),
        now_ms=lambda: NOW_MS,
        is_deleted=ref.is_deleted,
        deleted_by=ref.deleted_by,
    )
    return runtime, ref, ctx


def detect(runtime: MemoryRuntime, ctx: DetectionContext, records: list[Any]) -> None:
    clock = runtime.table(SITE_CLOCK_TABLE)
    result = process_batch(records, ctx)
    runtime.carry_out(stage_result(result, lambda site: clock.get(site.encode())))


def test_detections_produce_keyed_scans_alerts_and_advance_the_site_clock() -> None:
    runtime, _ref, ctx = worker_state()
    late = T0 + timedelta(minutes=20)
    detect(runtime, ctx, [detection(unit(1), event_id="hit", at=late),
                          detection(unit(50), event_id="miss")])  # fmt: skip
    assert [(k, s["event_id"]) for k, s, _ in runtime.produced["scans"]] == [
        ("S1", "hit"), ("S1", "miss")
    ]  # fmt: skip
    ((key, alert, timestamp_ms),) = runtime.produced["alerts"]
    assert key == alert["alert_id"] and timestamp_ms == 1_759_309_200_000
    assert runtime.table(SITE_CLOCK_TABLE) == {b"S1": to_millis(late)}
    detect(runtime, ctx, [detection(unit(50), event_id="older")])
    assert runtime.table(SITE_CLOCK_TABLE) == {b"S1": to_millis(late)}  # never moves back


def alert_records(runtime: MemoryRuntime) -> list[Any]:
    return [record("lfr.alerts", key, encode("Alert", alert))
            for key, alert, _ in runtime.produced["alerts"]]  # fmt: skip


@pytest.mark.parametrize("adjudication_first", [False, True])
def test_an_alert_and_its_adjudication_make_one_outcome_in_either_order(
    adjudication_first: bool,
) -> None:
    runtime, _ref, ctx = worker_state()
    detect(runtime, ctx, [detection(unit(2), event_id="hit")])
    (alert,) = alert_records(runtime)
    alert_id = runtime.records("alerts")[0]["alert_id"]
    tables = runtime.tables_of(ALERTS_TABLE, PENDING_TABLE)
    if adjudication_first:
        runtime.run(on_adjudications, [adjudication_of(alert_id)], tables, NOW_MS)
        assert list(runtime.table(PENDING_TABLE)) == [alert_id.encode()]
        assert "outcomes" not in runtime.produced
    runtime.run(on_alerts, [alert, alert], tables, NOW_MS)  # a redelivered copy changes nothing
    if not adjudication_first:
        runtime.run(on_adjudications, [adjudication_of(alert_id)], tables, NOW_MS + 5)
    (outcome,) = runtime.records("outcomes")
    assert outcome["alert_id"] == alert_id and outcome["outcome"] == "ARREST"
    assert runtime.table(PENDING_TABLE) == {}
    stored = runtime.table(ALERTS_TABLE)[alert_id.encode()]
    assert stored[STORED_AT] == NOW_MS and stored[OUTCOME_AT] in (NOW_MS, NOW_MS + 5)
    runtime.run(on_adjudications, [adjudication_of(alert_id, minutes=5)], tables, NOW_MS)
    assert len(runtime.records("outcomes")) == 1  # an older decision is dropped


def test_bad_alerts_and_adjudications_are_dead_lettered_with_their_stage() -> None:
    runtime = MemoryRuntime()
    tables = runtime.tables_of(ALERTS_TABLE, PENDING_TABLE)
    runtime.run(on_alerts, [record("lfr.alerts", None, b"x"), record("lfr.alerts", "A", b"x")],
                tables, NOW_MS)  # fmt: skip
    runtime.run(on_adjudications, [record("lfr.adjudications", "A", None),
                                   adjudication_of("A", key="B"),
                                   adjudication_of("A", verdict="FALSE_ALERT")],
                tables, NOW_MS)  # fmt: skip
    letters = runtime.records("dlq")
    assert [(d["stage"], d["reason"]) for d in letters] == [
        ("worker.alerts", "invalid"), ("worker.alerts", "undecodable"),
        ("worker.adjudications", "invalid"), ("worker.adjudications", "invalid"),
        ("worker.adjudications", "invalid"),
    ]  # fmt: skip
    assert all(d["payload"] is not None for d in letters if d["payload_size"])  # not biometric
    assert runtime.table(ALERTS_TABLE) == {} and runtime.table(PENDING_TABLE) == {}


# --- timers -------------------------------------------------------------------------


def test_orphan_adjudications_are_dead_lettered_and_deleted_after_the_hold() -> None:
    runtime = MemoryRuntime()
    tables = runtime.tables_of(ALERTS_TABLE, PENDING_TABLE)
    runtime.run(on_adjudications, [adjudication_of("A")], tables, NOW_MS)
    runtime.run(on_adjudications, [adjudication_of("B")], tables, NOW_MS + 500)
    pending = runtime.table(PENDING_TABLE)
    runtime.carry_out(expire_orphans(list(pending.items()), NOW_MS + 1_000, hold_ms=1_000))
    assert list(pending) == [b"B"]
    ((letter),) = runtime.records("dlq")
    assert letter["reason"] == "orphan_adjudication" and letter["key"] == "A"
    assert letter["stage"] == ADJUDICATIONS.stage


def test_alert_expiry_deletes_due_entries_only() -> None:
    runtime = MemoryRuntime()
    alerts = runtime.table(ALERTS_TABLE)
    alerts[b"old"] = {STORED_AT: 0, "alerted_at": 0}
    alerts[b"new"] = {STORED_AT: 900, "alerted_at": 0}
    alerts[b"done"] = {STORED_AT: 900, OUTCOME_AT: 100, "alerted_at": 0}
    rule = AlertExpiry(ttl_ms=1_000, keep_after_outcome_ms=50)
    runtime.carry_out(expire_alerts(list(alerts.items()), rule, now_ms=1_000))
    assert list(alerts) == [b"new"] and runtime.produced == {}
