"""The simulated records: order, determinism, lifecycle rules and contract validity."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pytest

from schemas.codec import decode, encode
from schemas.validation import validate
from streams.simulator import build_scenario, generate
from streams.simulator.errors import UnknownScenarioError
from streams.simulator.events import TOPICS, Simulation
from streams.simulator.kafka_out import RECORD_NAMES
from streams.simulator.scenario import DAY_MS, HOUR_MS

RANK = {t: i for i, t in enumerate(TOPICS)}


def test_records_come_in_event_time_order(small_run: dict[str, Any]) -> None:
    keys = [(r.at_ms, RANK[r.topic]) for r in small_run["records"]]
    assert keys == sorted(keys)
    assert {r.topic for r in small_run["records"]} == set(TOPICS)


def test_same_seed_same_records_and_other_seed_differs() -> None:
    def digest(seed: int) -> list[tuple[str, bytes | None, bytes | None]]:
        out = []
        for topic, key, record in generate(build_scenario("small", seed)):
            value = None if record is None else encode(RECORD_NAMES[topic], record)
            out.append((topic, key, value))
        return out

    first = digest(3)
    assert first == digest(3)
    assert first != digest(4)


def test_every_record_encodes_validates_and_round_trips(small_run: dict[str, Any]) -> None:
    for item in small_run["records"]:
        if item.value is None:
            assert item.topic == "watchlist"
            continue
        name = RECORD_NAMES[item.topic]
        validate(name, item.value)
        decoded = decode(name, encode(name, item.value))
        for field, value in item.value.items():
            if isinstance(value, float):
                assert decoded[field] == pytest.approx(value, abs=1e-6)
            else:
                assert decoded[field] == value


def test_keys_follow_the_contract(small_run: dict[str, Any]) -> None:
    for item in small_run["records"]:
        assert item.key is not None
        if item.topic in ("detections", "operations"):
            assert item.value is not None
            assert item.key == item.value["site_id"].encode()
        elif item.topic == "adjudications":
            assert item.value is not None
            assert item.key == item.value["alert_id"].encode()
        elif item.value is not None:
            expected = f"{item.value['watchlist_id']}:{item.value['subject_id']}".encode()
            assert item.key == expected


def test_windows_go_planned_active_ended_or_cancelled(small_run: dict[str, Any]) -> None:
    versions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in small_run["records"]:
        if item.topic == "operations":
            assert item.value is not None
            versions[item.value["deployment_id"]].append(item.value)
    statuses = sorted(tuple(v["status"] for v in vs) for vs in versions.values())
    assert statuses.count(("PLANNED", "ACTIVE", "ENDED")) == 3
    assert statuses.count(("PLANNED", "CANCELLED")) == 1
    for vs in versions.values():
        # the covered interval is fixed from the first version on
        assert len({(v["starts_at"], v["ends_at"]) for v in vs}) == 1
        assert all(v["authorised_by"] and v["authorised_at"] for v in vs)
        assert all(v["updated_at"] <= w["updated_at"] for v, w in zip(vs, vs[1:], strict=False))


def test_watchlist_is_built_within_24h_before_and_removed_after_the_deployment(
    small_run: dict[str, Any],
) -> None:
    scenario = small_run["scenario"]
    by_watchlist = {d.watchlist_id: d for d in scenario.deployments}
    seen: dict[str, set[str]] = defaultdict(set)
    for item in small_run["records"]:
        if item.topic != "watchlist":
            continue
        watchlist_id = item.key.decode().partition(":")[0]
        dep = by_watchlist[watchlist_id]
        end = dep.cancelled_at_ms if dep.cancelled_at_ms is not None else dep.ends_at_ms
        if item.value is not None and item.value["op"] == "ADD":
            assert 0 < dep.starts_at_ms - item.at_ms <= 24 * HOUR_MS
            seen[watchlist_id].add(item.key.decode())
        else:
            assert item.at_ms > end
            if item.value is None:
                assert item.key.decode() in seen[watchlist_id]
    # at the end of the stream no watchlist entry is left anywhere
    assert all(not entries for entries in small_run["builder"].watchlists.values())


def test_window_watchlist_size_is_the_number_of_entries(small_run: dict[str, Any]) -> None:
    adds: dict[str, int] = defaultdict(int)
    sizes: dict[str, int] = {}
    for item in small_run["records"]:
        if item.topic == "watchlist" and item.value and item.value["op"] == "ADD":
            adds[item.value["watchlist_id"]] += 1
        elif item.topic == "operations":
            assert item.value is not None
            sizes[item.value["watchlist_id"]] = item.value["watchlist_size"]
    assert sizes == dict(adds)


def test_every_predicted_alert_has_one_later_adjudication(small_run: dict[str, Any]) -> None:
    predicted = {a.alert_id: a for a in small_run["simulation"].predicted_alerts}
    adjudicated: dict[str, int] = defaultdict(int)
    for item in small_run["records"]:
        if item.topic == "adjudications":
            assert item.value is not None
            alert = predicted[item.value["alert_id"]]
            assert item.at_ms > alert.captured_at_ms
            adjudicated[alert.alert_id] += 1
    assert set(adjudicated) == set(predicted)
    assert set(adjudicated.values()) == {1}


def test_detections_outside_windows_include_every_gating_edge(small_run: dict[str, Any]) -> None:
    scenario = small_run["scenario"]
    captured = defaultdict(set)
    for item in small_run["records"]:
        if item.topic == "detections":
            assert item.value is not None
            captured[item.value["site_id"]].add(item.at_ms)
    for dep in scenario.active_deployments:
        times = captured[dep.site.site_id]
        assert {dep.starts_at_ms, dep.starts_at_ms - 1, dep.ends_at_ms} <= times
        assert any(dep.activated_at_ms < t < dep.starts_at_ms for t in times)
        assert any(dep.built_at_ms < t < dep.activated_at_ms for t in times)
        assert any(dep.ends_at_ms < t < dep.ends_at_ms + DAY_MS for t in times)


def test_templates_are_unit_float16_of_the_scenario_dimension(small_run: dict[str, Any]) -> None:
    dim = small_run["scenario"].dim
    for item in small_run["records"][::50]:
        if item.value is not None and item.value.get("template") is not None:
            vector = np.frombuffer(item.value["template"], dtype="<f2").astype(np.float32)
            assert vector.size == dim
            assert abs(float(np.linalg.norm(vector)) - 1.0) < 2e-3


def test_templates_are_made_per_deployment_and_released(small_run: dict[str, Any]) -> None:
    simulation = Simulation(small_run["scenario"])
    most = 0
    for _ in simulation.records():
        most = max(most, len(simulation._made))
    assert 1 <= most < len(small_run["scenario"].deployments)
    assert simulation._made == {}


def test_unknown_scenario_is_a_command_error() -> None:
    with pytest.raises(UnknownScenarioError, match="unknown scenario"):
        build_scenario("huge")
