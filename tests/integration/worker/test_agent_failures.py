"""An agent that fails never loses its record: no offset is committed past it.

Faust acknowledges the record an agent was handling when the agent raises
(its stream's ``finally``), so the record's offset is committed and the
record is never processed again. These tests provoke failures inside
processing on the real broker and check that every record still has its
effect.
"""

from __future__ import annotations

import subprocess
from datetime import timedelta
from typing import Any

import pytest

from streams.worker.records import alert_id

from ...unit.worker.conftest import T0
from .conftest import WorkerHarness
from .test_pipeline import detection, publish_setup

pytestmark = pytest.mark.integration
LAUNCHER = "tests.integration.worker.poisoned_worker"

VERDICT: dict[str, Any] = {
    "officer_ref": "PC1", "verdict": "TRUE_MATCH", "confirmed": True, "outcome": "ARREST",
    "located_at": T0 + timedelta(minutes=15), "decided_at": T0 + timedelta(minutes=20),
}  # fmt: skip


def test_table_writes_without_changelog_metadata_lose_no_outcome(
    harness: WorkerHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table write needs its changelog's partitions in the producer's metadata.

    Seen in CI and on fresh brokers: the first write to pending_adjudications
    raised in the producer's partitioner (no metadata for the changelog yet),
    the agent crashed, the record was acknowledged and its outcome was lost.
    Here every write finds the metadata gone, and every outcome arrives
    without a single agent failure.
    """
    h, s = harness, harness.settings
    monkeypatch.setenv("LFR_TEST_FORGET_CHANGELOGS", "1")
    vecs = publish_setup(h, 4)
    ids = [alert_id(f"m{i}", "W1", f"p{i}") for i in range(4)]
    for aid in ids:  # the verdicts first: each one waits for its alert
        h.send(s.topic_adjudications, aid, "Adjudication", {"alert_id": aid, **VERDICT})
    h.flush()
    h.start_worker("--adjudication-hold", "600", module=LAUNCHER)
    h.wait_ready()
    for i, vec in enumerate(vecs):
        h.send(s.topic_detections, "S1", "DetectionEvent", detection(f"m{i}", vec))
    h.flush()
    outcomes = h.wait_for(s.topic_outcomes, "Outcome", lambda r: len(r) >= 4, timeout=90)
    assert sorted(o["alert_id"] for o in outcomes) == sorted(ids)
    assert "Traceback" not in h.log_text()
    assert "lfr_worker_agent_failures_total{" not in h.metrics()
    assert "waiting for the metadata of changelog" in h.log_text()


def poison_run(h: WorkerHarness, monkeypatch: pytest.MonkeyPatch, times: int) -> list[str]:
    """Publish a deployment and three matching faces; the middle one is the poison."""
    s = h.settings
    vecs = publish_setup(h, 3)
    monkeypatch.setenv("LFR_TEST_POISON", "poison-m1")
    monkeypatch.setenv("LFR_TEST_POISON_TIMES", str(times))
    monkeypatch.setenv("LFR_TEST_RETRY_LIMIT_S", "2")
    names = ["m0", "poison-m1", "m2"]
    for name, vec in zip(names, vecs, strict=True):
        h.send(s.topic_detections, "S1", "DetectionEvent", detection(name, vec))
    h.flush()
    return [alert_id(name, "W1", f"p{i}") for i, name in enumerate(names)]


def test_a_batch_that_raises_once_is_processed_again_in_place(
    harness: WorkerHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h, s = harness, harness.settings
    expected = poison_run(h, monkeypatch, times=2)
    h.start_worker(module=LAUNCHER)
    alerts = h.wait_for(s.topic_alerts, "Alert", lambda r: len(r) >= 3, timeout=90)
    assert sorted(a["alert_id"] for a in alerts) == sorted(expected)
    assert 'lfr_worker_agent_failures_total{agent="detections"} 2.0' in h.metrics()
    assert h.procs[-1].poll() is None


def test_a_batch_that_keeps_failing_stops_the_worker_uncommitted(
    harness: WorkerHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h, s = harness, harness.settings
    expected = poison_run(h, monkeypatch, times=1_000_000)
    poisoned = h.start_worker(module=LAUNCHER)
    try:
        code = poisoned.wait(timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("the worker did not stop:\n" + h.log_text()[-4000:])
    assert code == 70, h.log_text()[-3000:]
    assert expected[1] not in {a["alert_id"] for a in h.decoded(s.topic_alerts, "Alert")}
    h.start_worker()  # the fault is gone: the batch was not committed, so it comes again
    alerts = h.wait_for(
        s.topic_alerts, "Alert", lambda r: {a["alert_id"] for a in r} >= set(expected), timeout=120
    )
    assert {a["alert_id"] for a in alerts} == set(expected)
