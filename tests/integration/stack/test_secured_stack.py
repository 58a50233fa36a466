"""`lfr stack up --secure`: TLS with the stack's own CA, SCRAM logins and ACLs are enforced."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from clickhouse_driver import Client
from clickhouse_driver.errors import Error as ClickHouseError
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError
from pydantic import SecretStr

from common.settings import Settings
from streams.localstack import stack
from streams.localstack.kafka import broker_answers
from streams.localstack.process import StackError, pid_alive, port_in_use
from streams.localstack.tls import ensure_tls_files
from streams.localstack.topology import Topology, stack_settings
from tests.integration.stack.private_stack import PrivateStack, free_port_block, private_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SECURE = Topology(secure=True)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    with private_stack(tmp_path_factory.mktemp("secured") / "state", SECURE) as running:
        yield running


def _admin(settings: Settings) -> KafkaAdminClient:
    return KafkaAdminClient(
        **settings.kafka_python_config(), request_timeout_ms=10_000, client_id="lfr-test"
    )


def test_application_user_reaches_only_the_pipeline_topics(secured: PrivateStack) -> None:
    app = secured.client_settings()
    admin = _admin(app)
    try:
        allowed = f"lfr.acl-{time.monotonic_ns()}"
        admin.create_topics([NewTopic(allowed, 1, 1)])
        with pytest.raises(TopicAuthorizationFailedError):
            admin.create_topics([NewTopic(f"other.acl-{time.monotonic_ns()}", 1, 1)])
    finally:
        admin.close()

    producer = KafkaProducer(**app.kafka_python_config(), acks="all", max_block_ms=10_000)
    try:
        producer.send(allowed, b"ok").get(timeout=10)
    finally:
        producer.close()

    # a group outside the app id prefix is refused
    consumer = KafkaConsumer(
        allowed, **app.kafka_python_config(), group_id="someone-else",
        auto_offset_reset="earliest", consumer_timeout_ms=10_000,
    )  # fmt: skip
    try:
        with pytest.raises(GroupAuthorizationFailedError):
            for _ in consumer:
                break
    finally:
        consumer.close()


def test_wrong_ca_and_wrong_password_are_refused(secured: PrivateStack, tmp_path: Path) -> None:
    app = secured.client_settings()
    other_ca = ensure_tls_files(tmp_path / "other-ca").ca_cert
    assert broker_answers(app.kafka_bootstrap, config=_security(app)), "the right login works"
    wrong_ca = app.model_copy(update={"kafka_ssl_cafile": other_ca})
    assert not broker_answers(wrong_ca.kafka_bootstrap, config=_security(wrong_ca))
    wrong_password = app.model_copy(update={"kafka_sasl_password": SecretStr("not-it")})
    assert not broker_answers(wrong_password.kafka_bootstrap, config=_security(wrong_password))

    def clickhouse(settings: Settings) -> list[tuple[int]]:
        config = settings.clickhouse_config("admin") | {"database": "default"}
        client = Client(**config, connect_timeout=5)
        try:
            return list(client.execute("SELECT 1"))
        finally:
            client.disconnect()

    assert clickhouse(app) == [(1,)]
    with pytest.raises((ClickHouseError, OSError)):
        clickhouse(app.model_copy(update={"clickhouse_ca_file": other_ca}))
    with pytest.raises(ClickHouseError):
        clickhouse(app.model_copy(update={"clickhouse_password": SecretStr("not-it")}))
    # no plaintext native port: TLS or nothing
    with pytest.raises((ClickHouseError, OSError, EOFError)):
        clickhouse(app.model_copy(update={"clickhouse_secure": False, "clickhouse_ca_file": None}))
    assert not port_in_use(app.clickhouse_http_port), "no plaintext HTTP listener either"


def _security(settings: Settings) -> dict[str, object]:
    config = settings.kafka_python_config()
    config.pop("bootstrap_servers")
    return config


def test_lfr_commands_work_with_client_env_and_fail_on_acl_denial(
    secured: PrivateStack,
) -> None:
    outside = {k: v for k, v in os.environ.items() if not k.startswith("LFR_")}
    env = {**outside, **secured.client_env}
    created = subprocess.run(
        [sys.executable, "-m", "streams.cli", "topics", "create"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    began = time.monotonic()
    denied = subprocess.run(
        [sys.executable, "-m", "streams.cli", "topics", "create"],
        env={**env, "LFR_TOPIC_DLQ": "elsewhere.dlq"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert denied.returncode == 1 and "Authorization" in denied.stderr, denied.stderr
    assert time.monotonic() - began < 60


def test_failed_up_stops_what_it_started(tmp_path: Path) -> None:
    from tests.integration.stack.private_stack import link_jar_cache

    state = tmp_path / "state"
    link_jar_cache(state)
    kafka, clickhouse = free_port_block(2), free_port_block(2)
    settings = stack_settings(
        Settings(
            state_dir=state,
            kafka_bootstrap=f"127.0.0.1:{kafka}",
            kafka_controller_port=kafka + 1,
            clickhouse_port=clickhouse,
            clickhouse_http_port=clickhouse + 1,
        ),
        SECURE,
    )
    with socket.socket() as squatter:
        # something else answers on ClickHouse's HTTP port: ClickHouse cannot start
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", clickhouse + 1))
        squatter.listen()
        with pytest.raises(StackError, match=f"port {clickhouse + 1}"):
            stack.up(settings, ["kafka", "clickhouse"], SECURE)
    try:
        kafka_service = stack.services(settings, SECURE)[0]
        assert kafka_service.pid_file.read() is None, "the Kafka node it launched still runs"
        assert not any(pid_alive(p) for p in _pids(state))
    finally:
        stack.down(settings, topology=SECURE)


def _pids(state: Path) -> list[int]:
    return [int(p.read_text().split()[0]) for p in (state / "run").glob("*.pid")]


def test_a_secure_stack_refuses_a_state_dir_of_another_topology(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "topology").write_text("plain\n")
    settings = Settings(state_dir=state)
    with pytest.raises(StackError, match="holds a plain stack"):
        stack.up(settings, ["kafka"], SECURE)
    assert not list(state.glob("kafka*")), "nothing was started or written"
