"""The secured and several-broker stacks get their own state dir and ports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common.settings import Settings
from streams.localstack.process import StackError
from streams.localstack.security import application_acls, topic_prefixes
from streams.localstack.topology import (
    Topology,
    check_ports_distinct,
    controller_ports,
    stack_settings,
)


@pytest.fixture(autouse=True)
def _no_lfr_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("LFR_")]:
        monkeypatch.delenv(key)


def test_default_stack_is_unchanged() -> None:
    settings = Settings()
    assert stack_settings(settings, Topology()) is settings


def test_secure_stack_beside_the_plain_one() -> None:
    secure = stack_settings(Settings(), Topology(secure=True))
    assert secure.state_dir == Path(".lfr/secure")
    assert secure.kafka_bootstrap == "127.0.0.1:9192"
    assert (secure.kafka_controller_port, secure.clickhouse_port) == (9193, 9100)
    assert secure.prometheus_port == 9190


def test_three_brokers_list_every_node() -> None:
    three = stack_settings(Settings(), Topology(brokers=3))
    assert three.kafka_bootstrap == "127.0.0.1:9292,127.0.0.1:9294,127.0.0.1:9296"
    assert controller_ports(three, 3) == [9293, 9295, 9297]
    assert three.kafka_replication_factor == 3
    assert three.state_dir == Path(".lfr/brokers-3")
    check_ports_distinct(three, Topology(brokers=3))


def test_explicit_settings_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LFR_STATE_DIR", "/srv/lfr")
    monkeypatch.setenv("LFR_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    secure = stack_settings(Settings(), Topology(secure=True, brokers=2))
    assert secure.state_dir == Path("/srv/lfr")
    assert secure.kafka_bootstrap == "127.0.0.1:19092,127.0.0.1:19094"
    assert secure.kafka_replication_factor == 2


def test_clashing_ports_and_bad_broker_counts_are_refused() -> None:
    with pytest.raises(StackError, match="--brokers"):
        Topology(brokers=0)
    clash = Settings(kafka_bootstrap="127.0.0.1:9000")  # ClickHouse's native port
    with pytest.raises(StackError, match="9000"):
        check_ports_distinct(clash, Topology())


def test_acls_cover_the_pipeline_and_the_app_only() -> None:
    settings = Settings(topic_dlq="dead.letters")
    assert topic_prefixes(settings) == ["dead.", "lfr."]
    acls = application_acls(settings)
    topics = {prefix for kind, prefix, _ in acls if kind == "TOPIC"}
    assert topics == {"dead.", "lfr.", settings.app_id}
    assert {prefix for kind, prefix, _ in acls if kind == "GROUP"} == {settings.app_id}
    assert not any(op in {"ALL", "ALTER"} for _, _, op in acls), "least privilege"
