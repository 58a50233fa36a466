"""Security settings: no built-in pseudonym key, TLS files checked at start, one TLS context."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from common.errors import ConfigError
from common.kafka_config import aiokafka_config, kafka_python_config
from common.settings import DEV_PSEUDONYM_KEY, MIN_PSEUDONYM_KEY_LENGTH, Settings
from streams.cli import main


def _self_signed(tmp_path: Path, pass_phrase: bytes | None) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "client")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    encryption = (
        serialization.BestAvailableEncryption(pass_phrase)
        if pass_phrase
        else serialization.NoEncryption()
    )
    cert_file, key_file = tmp_path / "client.pem", tmp_path / "client.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return cert_file, key_file


def test_worker_refuses_to_run_without_a_key() -> None:
    with pytest.raises(ConfigError, match="LFR_PSEUDONYM_KEY is not set"):
        Settings().require_pseudonym_key()


def test_development_key_only_when_explicitly_allowed() -> None:
    key = Settings(allow_dev_pseudonym_key=True).require_pseudonym_key()
    assert key.get_secret_value() == DEV_PSEUDONYM_KEY
    given = "k" * MIN_PSEUDONYM_KEY_LENGTH
    assert Settings(pseudonym_key=given, allow_dev_pseudonym_key=True).require_pseudonym_key(
    ).get_secret_value() == given  # fmt: skip


def test_short_key_is_one_line_from_the_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LFR_PSEUDONYM_KEY", "x" * (MIN_PSEUDONYM_KEY_LENGTH - 1))
    assert main(["stack", "status"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lfr: invalid setting LFR_PSEUDONYM_KEY"), err
    assert "x" * 8 not in err[0], "the key itself must never be printed"


def test_missing_tls_file_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LFR_KAFKA_SSL_CAFILE", "/nonexistent/lfr-ca.pem")
    assert main(["stack", "status"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "LFR_KAFKA_SSL_CAFILE" in err[0] and "/nonexistent/lfr-ca.pem" in err[0]


def test_one_tls_context_for_every_client(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path, None)
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc",
        kafka_sasl_password="pw",
        kafka_ssl_cafile=cert,
        kafka_ssl_certfile=cert,
        kafka_ssl_keyfile=key,
    )
    for config in (kafka_python_config(settings), aiokafka_config(settings)):
        context = config["ssl_context"]
        assert isinstance(context, ssl.SSLContext)
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        assert config["sasl_plain_password"] == "pw"
        assert config["sasl_mechanism"] == "SCRAM-SHA-512"


def test_encrypted_key_needs_its_pass_phrase(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path, b"open-sesame")
    base = {"kafka_security_protocol": "SSL", "kafka_ssl_certfile": cert, "kafka_ssl_keyfile": key}
    # without the pass phrase: a clear error, never a prompt on the terminal
    with pytest.raises(ConfigError, match="LFR_KAFKA_SSL_KEY_PASSWORD"):
        kafka_python_config(Settings(**base))
    with pytest.raises(ConfigError, match="wrong LFR_KAFKA_SSL_KEY_PASSWORD"):
        kafka_python_config(Settings(**base, kafka_ssl_key_password="wrong"))
    config = kafka_python_config(Settings(**base, kafka_ssl_key_password="open-sesame"))
    assert isinstance(config["ssl_context"], ssl.SSLContext)


def test_clickhouse_tls_files_reach_the_driver(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path, None)
    settings = Settings(
        clickhouse_secure=True,
        clickhouse_ca_file=cert,
        clickhouse_cert_file=cert,
        clickhouse_key_file=key,
    )
    config = settings.clickhouse_config("ingest")
    assert config["secure"] is True and config["verify"] is True
    assert (config["ca_certs"], config["certfile"], config["keyfile"]) == (
        str(cert),
        str(cert),
        str(key),
    )
    assert "ca_certs" not in Settings().clickhouse_config()


def test_lfr_worker_without_a_key_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delenv("LFR_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("LFR_ALLOW_DEV_PSEUDONYM_KEY", raising=False)
    monkeypatch.setenv("LFR_STATE_DIR", str(tmp_path))
    assert main(["worker"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("lfr: LFR_PSEUDONYM_KEY is not set"), err
