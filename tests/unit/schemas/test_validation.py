"""Semantic rules of schemas.validation, one failure per rule."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest

from schemas.codec import encode
from schemas.deadletter import dead_letter
from schemas.errors import (
    InconsistentRecordError,
    InstantError,
    MissingValueError,
    OutOfRangeError,
    TemplateError,
    UnknownSchemaError,
    ValidationError,
)
from schemas.templates import template_to_bytes
from schemas.validation import validate
from tests.unit.schemas.avro_strategies import (
    NOW,
    VALID,
    adjudication,
    alert,
    detection,
    operation_window,
    outcome,
    scan,
    unit_template,
    watchlist_entry,
)


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_records_pass_and_encode(name: str) -> None:
    record = VALID[name]()
    validate(name, record, now=NOW)
    encode(name, record)


def test_dead_letters_pass() -> None:
    letter = dead_letter(
        topic="lfr.operations",
        partition=0,
        offset=1,
        key=b"k",
        payload=b"x",
        error=ValueError("bad"),
        stage="worker.operations",
        biometric=(),
    )
    validate("DeadLetter", letter)


NAN_TEMPLATE = template_to_bytes(np.full(512, np.nan, dtype=np.float32))
CASES: list[tuple[str, dict[str, Any], type[ValidationError]]] = [
    ("DetectionEvent", detection(event_id=""), MissingValueError),
    ("DetectionEvent", detection(site_id="  "), MissingValueError),
    ("DetectionEvent", detection(template=NAN_TEMPLATE), TemplateError),
    ("DetectionEvent", detection(template=unit_template()[:-1]), TemplateError),
    ("DetectionEvent", detection(template=b""), TemplateError),
    ("DetectionEvent", detection(template=unit_template(dim=8)), TemplateError),
    ("DetectionEvent", detection(template=template_to_bytes(np.ones(512))), TemplateError),
    ("DetectionEvent", detection(face_quality=1.5), OutOfRangeError),
    ("DetectionEvent", detection(face_quality=float("nan")), OutOfRangeError),
    ("DetectionEvent", detection(captured_at=NOW + timedelta(days=400)), InstantError),
    ("DetectionEvent", detection(captured_at=datetime(2025, 1, 1)), InstantError),  # noqa: DTZ001
    ("WatchlistEntry", watchlist_entry(op="REMOVE"), InconsistentRecordError),
    ("WatchlistEntry", watchlist_entry(template=None), InconsistentRecordError),
    ("WatchlistEntry", watchlist_entry(subject_id=""), MissingValueError),
    ("OperationWindow", operation_window(match_threshold=0.0), OutOfRangeError),
    ("OperationWindow", operation_window(match_threshold=1.2), OutOfRangeError),
    ("OperationWindow", operation_window(ends_at=NOW - timedelta(hours=2)), InstantError),
    (
        "OperationWindow",
        operation_window(authorised_by=None, authorised_at=None),
        InconsistentRecordError,
    ),
    ("OperationWindow", operation_window(authorised_at=None), InconsistentRecordError),
    ("OperationWindow", operation_window(status="ENDED"), InconsistentRecordError),
    ("OperationWindow", operation_window(camera_ids=[]), MissingValueError),
    ("OperationWindow", operation_window(camera_ids=["a", "a"]), InconsistentRecordError),
    ("OperationWindow", operation_window(officers_present=-1), OutOfRangeError),
    ("Adjudication", adjudication(outcome="NONE"), InconsistentRecordError),
    ("Adjudication", adjudication(verdict="FALSE_ALERT"), InconsistentRecordError),
    ("Adjudication", adjudication(confirmed=False), InconsistentRecordError),
    ("Adjudication", adjudication(located_at=None), InconsistentRecordError),
    ("Alert", alert(score=0.5), InconsistentRecordError),
    ("Alert", alert(score=float("inf")), OutOfRangeError),
    ("Alert", alert(threshold=0), OutOfRangeError),
    ("Outcome", outcome(response_s=None), InconsistentRecordError),
    ("Scan", scan(camera_id=""), MissingValueError),
]


@pytest.mark.parametrize(
    "name, record, error", CASES, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(CASES)]
)
def test_rule_violations_raise_typed_errors(
    name: str, record: dict[str, Any], error: type[ValidationError]
) -> None:
    with pytest.raises(error):
        validate(name, record, now=NOW)


def test_rules_that_allow() -> None:
    validate("WatchlistEntry", watchlist_entry(op="REMOVE", template=None), now=NOW)
    validate(
        "OperationWindow",
        operation_window(status="PLANNED", authorised_by=None, authorised_at=None),
        now=NOW,
    )
    validate("OperationWindow", operation_window(status="ENDED", ends_at=NOW), now=NOW)
    validate(
        "Adjudication",
        adjudication(verdict="FALSE_ALERT", confirmed=False, outcome="NONE", located_at=None),
        now=NOW,
    )
    validate("Adjudication", adjudication(verdict="FALSE_ALERT", outcome="NONE"), now=NOW)
    validate(
        "Outcome",
        outcome(
            confirmed=False, outcome="NONE", located_at=None, time_to_locate_s=None, response_s=None
        ),
        now=NOW,
    )
    # epoch milliseconds are instants too
    validate("DetectionEvent", detection(captured_at=1_760_000_000_000), now=NOW)


def test_template_dimension_can_be_pinned() -> None:
    validate("DetectionEvent", detection(), now=NOW, template_dim=512)
    with pytest.raises(TemplateError, match="expected 128"):
        validate("DetectionEvent", detection(), now=NOW, template_dim=128)


def test_unknown_record_name() -> None:
    with pytest.raises(UnknownSchemaError):
        validate("Selfie", {})


def test_messages_never_contain_the_subject_id() -> None:
    with pytest.raises(ValidationError) as caught:
        validate("WatchlistEntry", watchlist_entry(subject_id="S-42", template=None), now=NOW)
    assert "S-42" not in str(caught.value)
