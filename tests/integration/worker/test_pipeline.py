"""The worker on the real broker: alerts, scans, dead letters, crash recovery, privacy."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from schemas.templates import template_to_bytes
from streams.worker.records import alert_id

from ...unit.worker.conftest import T0, unit, watchlist_record, window_record
from .conftest import ROOT, WorkerHarness, settings_env

pytestmark = pytest.mark.integration

DIM = 512  # random faces then never reach 0.64 by chance (sd of a cosine ~ 0.044)


def detection(event_id: str, vec: np.ndarray, **kw: Any) -> dict[str, Any]:
    record = {
        "event_id": event_id,
        "camera_id": "c1",
        "site_id": "S1",
        "captured_at": T0 + timedelta(minutes=5),
        "face_quality": 0.9,
        "template": template_to_bytes(vec),
        "template_model": "demo-512",
    }
    record.update(kw)
    return record


def metric(h: WorkerHarness, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", h.metrics(), re.MULTILINE)
    return float(match.group(1)) if match else float("nan")


def metric_sum(h: WorkerHarness, name: str) -> float:
    """Sum of every sample of ``name`` over its labels (0 when it has none yet)."""
    pattern = rf"^{re.escape(name)}(?:\{{[^}}]*\}})? ([0-9.e+-]+)$"
    return sum(float(v) for v in re.findall(pattern, h.metrics(), re.MULTILINE))


def wait_metric(h: WorkerHarness, name: str, value: float, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metric(h, name) == value:
            return
        time.sleep(0.3)
    pytest.fail(f"{name} never reached {value}: {metric(h, name)}\n" + h.log_text()[-2000:])


def publish_setup(h: WorkerHarness, subjects: int, **window: Any) -> list[np.ndarray]:
    s = h.settings
    vecs = [unit(i, DIM) for i in range(subjects)]
    for i, vec in enumerate(vecs):
        h.send(s.topic_watchlist, f"W1:p{i}", "WatchlistEntry", watchlist_record(f"p{i}", vec))
    h.send(s.topic_operations, "S1", "OperationWindow", window_record(**window))
    h.flush()
    return vecs


def assert_no_template_bytes(h: WorkerHarness, templates: list[bytes]) -> None:
    s = h.settings
    haystacks = [h.log_bytes()]
    for topic in (s.topic_scans, s.topic_alerts, s.topic_outcomes, s.topic_dlq):
        haystacks.extend(m.value or b"" for m in h.read(topic))
    blob = b"\n".join(haystacks)
    for template in templates:
        assert template[:16] not in blob and template[-16:] not in blob


def test_alerts_scans_gating_dead_letters_and_outcomes(harness: WorkerHarness) -> None:
    h, s = harness, harness.settings
    vecs = publish_setup(h, 3)
    h.start_worker("--adjudication-hold", "2")
    h.wait_ready()
    wait_metric(h, "lfr_operation_windows_active", 1)
    far = unit(999, DIM)
    sent = [
        detection("m0", vecs[0]),
        detection("m2", vecs[2], camera_id="c2"),
        detection("n0", far),
        detection("out-camera", vecs[1], camera_id="c9"),
        detection("out-time", vecs[1], captured_at=T0 + timedelta(hours=3)),
        detection("unknown-site", vecs[1], site_id="S404"),
    ]
    for record in sent:
        h.send(s.topic_detections, record["site_id"], "DetectionEvent", record)
    h.send(s.topic_detections, "S1", None, b"\xc3\x01not-avro-at-all")
    h.flush()

    scans = h.wait_for(s.topic_scans, "Scan", lambda r: len(r) >= 3)
    alerts = h.wait_for(s.topic_alerts, "Alert", lambda r: len(r) >= 2)
    dlq = h.wait_for(s.topic_dlq, "DeadLetter", lambda r: len(r) >= 2)
    time.sleep(1.0)  # anything extra would have arrived with the rest
    scans, alerts = h.decoded(s.topic_scans, "Scan"), h.decoded(s.topic_alerts, "Alert")
    assert sorted((x["event_id"], x["matched"]) for x in scans) == [
        ("m0", True), ("m2", True), ("n0", False),
    ]  # fmt: skip
    assert {a["alert_id"] for a in alerts} == {
        alert_id("m0", "W1", "p0"), alert_id("m2", "W1", "p2"),
    }  # fmt: skip
    assert all(a["threshold"] == 0.64 and a["watchlist_version"] > 0 for a in alerts)
    assert sorted(d["reason"] for d in h.decoded(s.topic_dlq, "DeadLetter")) == [
        "unknown_fingerprint", "unknown_site",
    ]  # fmt: skip
    assert all(d["payload"] is None for d in dlq)
    text = h.metrics()
    assert 'lfr_detections_gated_total{reason="camera_not_in_window"} 1.0' in text
    assert 'lfr_detections_gated_total{reason="outside_window"} 1.0' in text
    assert "lfr_alerts_total 2.0" in text

    # adjudications: one joins its alert, one has no alert and becomes an orphan
    decided = T0 + timedelta(minutes=20)
    verdict = {
        "officer_ref": "PC1", "verdict": "TRUE_MATCH", "confirmed": True, "outcome": "ARREST",
        "located_at": T0 + timedelta(minutes=15), "decided_at": decided,
    }  # fmt: skip
    a0 = alert_id("m0", "W1", "p0")
    h.send(s.topic_adjudications, a0, "Adjudication", {"alert_id": a0, **verdict})
    h.send(s.topic_adjudications, "nope", "Adjudication", {"alert_id": "nope", **verdict})
    h.flush()
    (outcome,) = h.wait_for(s.topic_outcomes, "Outcome", lambda r: len(r) >= 1)
    assert outcome["alert_id"] == a0 and outcome["response_s"] == 600.0
    letters = h.wait_for(s.topic_dlq, "DeadLetter", lambda r: len(r) >= 3)
    orphan = [d for d in letters if d["reason"] == "orphan_adjudication"]
    assert len(orphan) == 1 and orphan[0]["payload"] is not None

    assert_no_template_bytes(h, [template_to_bytes(v) for v in [*vecs, far]])


def test_sigkill_mid_stream_loses_no_alert(harness: WorkerHarness) -> None:
    h, s = harness, harness.settings
    vecs = publish_setup(h, 20)
    rng = np.random.default_rng(5)
    expected: set[str] = set()
    total = 6000
    templates = []
    for n in range(total):
        if n % 20 == 0:
            subject = int(rng.integers(0, 20))
            vec = vecs[subject]
            expected.add(alert_id(f"e{n}", "W1", f"p{subject}"))
        else:
            vec = unit(100_000 + n, DIM)
        templates.append(template_to_bytes(vec))
        h.send(s.topic_detections, "S1", "DetectionEvent", detection(f"e{n}", vec))
    h.flush()
    # small batches: the kill must land while most detections are still unread
    first = h.start_worker("--max-batch", "10")
    h.wait_ready()
    h.wait_for(s.topic_scans, "Scan", lambda r: len(r) >= 300, timeout=90)
    h.kill(first)
    assert len(h.decoded(s.topic_scans, "Scan")) < total, "killed too late to test anything"
    h.start_worker("--max-batch", "500")
    alerts = h.wait_for(
        s.topic_alerts, "Alert", lambda r: {a["alert_id"] for a in r} >= expected, timeout=120
    )
    assert {a["alert_id"] for a in alerts} == expected
    scans = h.wait_for(
        s.topic_scans, "Scan", lambda r: len({x["event_id"] for x in r}) >= total, timeout=120
    )
    assert {x["event_id"] for x in scans} == {f"e{n}" for n in range(total)}
    # a duplicate carries the same id and the same decision
    by_id: dict[str, set[tuple[str, float]]] = {}
    for a in alerts:
        by_id.setdefault(a["alert_id"], set()).add((a["subject_ref"], a["score"]))
    assert all(len(v) == 1 for v in by_id.values())
    assert_no_template_bytes(h, templates[::97])


def test_ended_deployment_drops_and_purges_its_watchlist(harness: WorkerHarness) -> None:
    h, s = harness, harness.settings
    publish_setup(h, 5)
    h.start_worker("--purge-on-end")
    h.wait_ready()
    wait_metric(h, "lfr_watchlist_entries", 5)
    ended = window_record(status="ENDED", updated_at=T0 + timedelta(hours=2, minutes=1))
    h.send(s.topic_operations, "S1", "OperationWindow", ended)
    h.flush()
    # still held: this worker's detections at S1 have not passed the end yet
    wait_metric(h, "lfr_operation_windows_active", 0)
    assert metric(h, "lfr_watchlist_entries") == 5
    # a detection after the end moves the stream time past it: deleted, then purged
    after = detection("after", unit(999, DIM), captured_at=T0 + timedelta(hours=2, minutes=5))
    h.send(s.topic_detections, "S1", "DetectionEvent", after)
    h.flush()
    wait_metric(h, "lfr_watchlist_entries", 0)
    wait_metric(h, "lfr_watchlists", 0)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        tombstones = {m.key for m in h.read(s.topic_watchlist) if m.value is None}
        if len(tombstones) == 5:
            break
        time.sleep(0.5)
    assert tombstones == {f"W1:p{i}".encode() for i in range(5)}


def test_replay_after_the_end_matches_as_live_then_deletes(harness: WorkerHarness) -> None:
    """The whole deployment is on the topics before the worker starts (catch-up).

    The broadcast service reads the ENDED window, the REMOVEs and the
    tombstones long before the detections agent reaches the deployment's
    detections; every in-window match must still alert.
    """
    h, s = harness, harness.settings
    vecs = publish_setup(h, 4)
    sent = [
        detection(f"m{i}", vecs[i], captured_at=T0 + timedelta(minutes=10 + i)) for i in range(4)
    ]
    sent.append(detection("n0", unit(999, DIM)))
    for record in sent:
        h.send(s.topic_detections, "S1", "DetectionEvent", record)
    ended = window_record(status="ENDED", updated_at=T0 + timedelta(hours=2, minutes=2))
    h.send(s.topic_operations, "S1", "OperationWindow", ended)
    removed = T0 + timedelta(hours=2, minutes=30)
    for i in range(4):
        entry = watchlist_record(f"p{i}", None, updated_at=removed)
        h.send(s.topic_watchlist, f"W1:p{i}", "WatchlistEntry", entry)
        h.send(s.topic_watchlist, f"W1:p{i}", None, None)
    after = detection("after", unit(998, DIM), captured_at=removed + timedelta(minutes=1))
    h.send(s.topic_detections, "S1", "DetectionEvent", after)
    h.flush()
    h.start_worker()
    h.wait_ready()
    alerts = h.wait_for(s.topic_alerts, "Alert", lambda r: len(r) >= 4)
    assert {a["alert_id"] for a in alerts} == {alert_id(f"m{i}", "W1", f"p{i}") for i in range(4)}
    scans = h.wait_for(s.topic_scans, "Scan", lambda r: len(r) >= 5)
    assert sorted(x["event_id"] for x in scans) == ["m0", "m1", "m2", "m3", "n0"]
    # "after" moved this worker's stream time past the end and the removals
    wait_metric(h, "lfr_watchlist_entries", 0)
    assert metric_sum(h, "lfr_detections_unmatched_retired_total") == 0


def test_purge_command_tombstones_a_deployments_watchlist(harness: WorkerHarness) -> None:
    h, s = harness, harness.settings
    publish_setup(h, 4)
    env = {**os.environ, **settings_env(s)}
    cmd = [sys.executable, "-m", "streams.cli", "watchlist", "purge", "--deployment", "D1"]
    live = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert live.returncode == 1 and "still used" in live.stderr
    ended = window_record(status="ENDED", updated_at=T0 + timedelta(hours=3))
    h.send(s.topic_operations, "S1", "OperationWindow", ended)
    h.flush()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "4 watchlist entries" in done.stdout
    tombstones = {m.key for m in h.read(s.topic_watchlist) if m.value is None}
    assert tombstones == {f"W1:p{i}".encode() for i in range(4)}
