"""The detections stage end to end without a broker, including the privacy invariant."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import encode
from schemas.templates import template_to_bytes
from streams.worker.detections import DetectionContext, process_batch
from streams.worker.pseudonym import Pseudonymiser
from streams.worker.watchlist_store import WatchlistStore
from streams.worker.windows import window_from_record

from .conftest import T0, detection, unit, watchlist_record, window_record

WINDOW = window_from_record(window_record())


def context(store: WatchlistStore, high_water: dict | None = None, lateness: int | None = None):  # noqa: ANN201
    return DetectionContext(
        windows_of=lambda site: [WINDOW] if site == "S1" else [],
        watchlist=store.snapshot,
        high_water_of=lambda site: (high_water or {}).get(site),
        pseudonymiser=Pseudonymiser(b"test"),
        allowed_lateness_ms=lateness,
        now_ms=lambda: 1,
    )


def store_of(n: int) -> WatchlistStore:
    store = WatchlistStore()
    for i in range(n):
        store.apply_entry(f"W1:s{i}", watchlist_record(f"s{i}", unit(i)), 0)
    return store


def test_scans_alerts_gating_and_dead_letters() -> None:
    records = [
        detection(unit(1), event_id="hit"),
        detection(unit(77), event_id="miss"),
        detection(unit(1), event_id="camera", camera_id="c9"),
        detection(unit(1), event_id="early", at=T0 - timedelta(seconds=1)),
        detection(unit(1), event_id="nosite", site_id="S9"),
        detection(unit(1), event_id="dim", template=template_to_bytes(unit(1, dim=64))),
    ]
    records.append(records[0].__class__("lfr.detections", 0, 99, b"S1", b"\x00junk", 0))
    result = process_batch(records, context(store_of(3)))
    assert [(s["event_id"], s["matched"]) for s in result.scans] == [("hit", True), ("miss", False)]
    assert [a["event_id"] for a, _ in result.alerts] == ["hit"]
    assert result.alerts[0][0]["subject_ref"] == Pseudonymiser(b"test").subject_ref("s1")
    assert result.gated == {"camera_not_in_window": 1, "outside_window": 1, "unknown_site": 1}
    reasons = sorted(d["reason"] for d in result.dead_letters)
    assert reasons == ["dimension_mismatch", "undecodable", "unknown_site"]
    assert all(d["payload"] is None for d in result.dead_letters)


def test_unknown_watchlist_is_dead_lettered_but_the_face_counted() -> None:
    result = process_batch([detection(unit(1))], context(WatchlistStore()))
    assert [d["reason"] for d in result.dead_letters] == ["unknown_watchlist"]
    assert [s["matched"] for s in result.scans] == [False]


def test_allowed_lateness_uses_the_batch_and_the_stored_clock() -> None:
    newest = T0 + timedelta(minutes=30)
    records = [detection(unit(1), at=newest), detection(unit(1), at=T0 + timedelta(minutes=1))]
    strict = process_batch(records, context(store_of(2), lateness=60_000))
    assert strict.gated == {"too_late": 1}
    assert process_batch(records, context(store_of(2))).gated == {}


@settings(max_examples=25, deadline=None)
@given(
    seeds=st.lists(st.integers(0, 10_000), min_size=1, max_size=12),
    cameras=st.lists(st.sampled_from(["c1", "c2", "c9"]), min_size=12, max_size=12),
    minutes=st.lists(st.integers(-30, 150), min_size=12, max_size=12),
)
def test_no_template_byte_sequence_leaves_the_stage(
    seeds: list[int], cameras: list[str], minutes: list[int]
) -> None:
    store = store_of(4)
    records = [
        detection(unit(s), camera_id=c, at=T0 + timedelta(minutes=m))
        for s, c, m in zip(seeds, cameras, minutes, strict=False)
    ]
    result = process_batch(records, context(store))
    outputs = b"".join(
        [encode("Scan", s) for s in result.scans]
        + [encode("Alert", a) for a, _ in result.alerts]
        + [encode("DeadLetter", d) for d in result.dead_letters]
    )
    for seed in seeds:
        template = template_to_bytes(unit(seed))
        # any 16-byte window of a template (8 float16 values) would betray it
        assert template[:16] not in outputs and template[-16:] not in outputs
    assert len(result.scans) + sum(result.gated.values()) == len(records)
    assert np.isfinite([a["score"] for a, _ in result.alerts]).all()


def test_the_codec_limit_dead_letters_an_oversize_detection() -> None:
    from dataclasses import replace

    from schemas.codec import Codec

    small = replace(context(store_of(2)), decode=Codec(max_payload_bytes=1024).decode)
    big = detection(unit(1, dim=1024), template=template_to_bytes(unit(1, dim=1024)))
    result = process_batch([big, detection(unit(1))], small)
    assert [d["reason"] for d in result.dead_letters] == ["oversize"]
    assert [s["matched"] for s in result.scans] == [True]


def test_stream_time_is_the_batch_own_not_the_stored_clock() -> None:
    # after a crash the stored clock can be ahead of the redelivered detections
    ahead = {"S1": int((T0 + timedelta(days=1)).timestamp() * 1000)}
    at = T0 + timedelta(minutes=7)
    result = process_batch([detection(unit(1), at=at)], context(store_of(2), high_water=ahead))
    assert result.stream_time == {"S1": int(at.timestamp() * 1000)}
    assert result.high_water == ahead


def test_each_scan_carries_its_detection_kafka_timestamp() -> None:
    hit, miss = detection(unit(1), event_id="hit"), detection(unit(77), event_id="miss")
    records = [
        type(hit)(r.topic, r.partition, r.offset, r.key, r.value, ts)
        for r, ts in ((hit, 1_111), (miss, 2_222))
    ]
    result = process_batch(records, context(store_of(3)))
    assert [s["event_id"] for s in result.scans] == ["hit", "miss"]
    assert result.scan_timestamps_ms == [1_111, 2_222]
