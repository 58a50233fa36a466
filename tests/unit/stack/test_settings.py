"""The settings object: secrets masked, bad values rejected, README in step."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from common.settings import Settings, reference_table
from streams.cli import main

README = Path(__file__).resolve().parents[3] / "README.md"


def test_secrets_never_print() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc",
        kafka_sasl_password="hunter2-kafka",
        clickhouse_password="hunter2-ch",
        pseudonym_key="hunter2-key-0123456789abcdefghijk",
    )
    for text in (str(settings), repr(settings), settings.model_dump_json()):
        assert "hunter2" not in text
    assert settings.kafka_python_config()["sasl_plain_password"] == "hunter2-kafka"


def test_environment_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LFR_PARTITIONS", "12")
    monkeypatch.setenv("LFR_KAFKA_BOOTSTRAP", "a:1,b:2")
    settings = Settings()
    assert settings.partitions == 12
    assert settings.bootstrap_servers == ["a:1", "b:2"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"kafka_bootstrap": "no-port"},
        {"partitions": 0},
        {"clickhouse_port": 70000},
        {"kafka_security_protocol": "SASL_SSL"},  # no mechanism or user
        # a user but no password: the worker would only fail later, at its first login
        {
            "kafka_security_protocol": "SASL_SSL",
            "kafka_sasl_mechanism": "SCRAM-SHA-512",
            "kafka_sasl_username": "svc",
        },
        {
            "kafka_security_protocol": "SASL_PLAINTEXT",
            "kafka_sasl_mechanism": "PLAIN",
            "kafka_sasl_username": "svc",
            "kafka_sasl_password": "",
        },
        {"pseudonym_key": "short-key"},
        {"kafka_ssl_cafile": "/nonexistent/ca.pem"},
        {"clickhouse_secure": True, "clickhouse_ca_file": "/nonexistent/ca.pem"},
        {"kafka_ssl_key_password": "phrase"},  # no key file to open with it
        {"kafka_security_protocol": "TLS"},
    ],
)
def test_bad_values_rejected(overrides: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**overrides)


def test_cli_reports_bad_setting_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LFR_PARTITIONS", "-3")
    assert main(["stack", "status"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lfr: invalid setting LFR_PARTITIONS")


def test_readme_lists_every_setting() -> None:
    text = README.read_text()
    block = re.search(r"<!-- settings:begin -->\n(.*?)\n<!-- settings:end -->", text, re.S)
    assert block is not None
    assert block.group(1) == reference_table(), (
        "README's configuration table is stale: regenerate it with "
        "`python -m common.settings` and paste between the settings markers"
    )
