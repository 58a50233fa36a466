"""The table of who caused a failure: the rows (dead-letter them) or the environment (block)."""

from __future__ import annotations

import ssl

import pytest
from kafka import errors as kafka_errors

from common.failures import CAUSES, classify_exception, kafka_failure_line
from sinks.blocking import Blockage
from sinks.errors import (
    CLICKHOUSE_CODES,
    ClickHouseRefused,
    ClickHouseRejected,
    ClickHouseUnavailable,
    classify_code,
    code_in,
    server_error,
)

# (code, message, class, cause): what the server says and what the sink must do
CLICKHOUSE_CASES = [
    (6, "Cannot parse input: expected , before: x", "record", "record"),
    (27, "Cannot parse input: assertion failed", "record", "record"),
    (38, "Cannot parse date", "record", "record"),
    (41, "Cannot parse datetime", "record", "record"),
    (53, "Type mismatch in VALUES section", "record", "record"),
    (70, "Cannot convert: String to UInt8", "record", "record"),
    (72, "Cannot parse number", "record", "record"),
    (321, "Value is out of range of data type", "record", "record"),
    (349, "Cannot insert NULL value into a column of type 'String'", "record", "record"),
    (252, "Too many partitions for single INSERT block (more than 100)", "record", "record"),
    (192, "Unknown user nobody", "environment", "authentication"),
    (193, "Wrong password for user ingest", "environment", "authentication"),
    (194, "Password required for user ingest", "environment", "authentication"),
    (195, "User ingest is not allowed to connect from address", "environment", "authentication"),
    (516, "ingest: Authentication failed: password is incorrect", "environment", "authentication"),
    (497, "ingest: Not enough privileges", "environment", "authorization"),
    (291, "Access denied to database lfr", "environment", "authorization"),
    (392, "DDL queries are prohibited for the user", "environment", "authorization"),
    (164, "Cannot execute query in readonly mode", "environment", "read_only"),
    (242, "Table is in readonly mode", "environment", "read_only"),
    (81, "Database lfr doesn't exist", "environment", "unknown_database"),
    (60, "Table lfr.scans doesn't exist.", "environment", "unknown_table"),
    (16, "There is no column captured_at_ms in table", "environment", "schema"),
    (
        252,
        "Too many parts (300). Merges are processing significantly slower than inserts",
        "environment",
        "too_many_parts",
    ),  # fmt: skip
    (241, "Memory limit (for query) exceeded", "environment", "memory"),
    (243, "Cannot reserve 1.00 MiB, not enough space", "environment", "disk"),
    (202, "Too many simultaneous queries", "environment", "overloaded"),
    (159, "Timeout exceeded: elapsed 300 seconds", "environment", "timeout"),
    (209, "Timeout exceeded while reading from socket", "environment", "timeout"),
    (210, "Connection refused", "environment", "unreachable"),
    (999, "a code this table has never heard of", "environment", "unknown"),
    (None, "no code at all", "environment", "unknown"),
]


@pytest.mark.parametrize(("code", "message", "error_class", "cause"), CLICKHOUSE_CASES)
def test_clickhouse_code_table(
    code: int | None, message: str, error_class: str, cause: str
) -> None:
    verdict = classify_code(code, message)
    assert (verdict.error_class, verdict.cause) == (error_class, cause)
    exc = server_error(f"Code: {code}. {message}", code)
    if error_class == "record":
        assert isinstance(exc, ClickHouseRejected) and not isinstance(exc, ClickHouseRefused)
    else:
        assert isinstance(exc, ClickHouseRefused) and exc.cause == cause
        assert cause in str(exc).replace(" ", "_")
    assert isinstance(exc, ClickHouseUnavailable) == (cause in ("unreachable", "timeout"))


def test_every_listed_code_has_a_known_cause() -> None:
    for code, verdict in CLICKHOUSE_CODES.items():
        assert verdict.error_class == "record" or verdict.cause in CAUSES, code


def test_the_code_is_read_from_chdb_text() -> None:
    assert code_in("Code: 60. DB::Exception: Table x.y does not exist. (UNKNOWN_TABLE)") == 60
    assert code_in("no code here") is None


KAFKA_CASES = [
    (kafka_errors.SaslAuthenticationFailedError("bad password"), "environment", "authentication"),
    (kafka_errors.TopicAuthorizationFailedError(), "environment", "authorization"),
    (kafka_errors.GroupAuthorizationFailedError(), "environment", "authorization"),
    (kafka_errors.ClusterAuthorizationFailedError(), "environment", "authorization"),
    (kafka_errors.KafkaConnectionError("111 ECONNREFUSED"), "environment", "unreachable"),
    (
        kafka_errors.KafkaConnectionError("Handshake failed: [SSL: CERTIFICATE_VERIFY_FAILED]"),
        "environment",
        "tls",
    ),  # fmt: skip
    (
        kafka_errors.KafkaTimeoutError("Unable to bootstrap from 127.0.0.1:1"),
        "environment",
        "timeout",
    ),  # fmt: skip
    (kafka_errors.RequestTimedOutError(), "environment", "timeout"),
    (kafka_errors.NotLeaderForPartitionError(), "environment", "kafka"),
    (kafka_errors.MessageSizeTooLargeError(), "record", "record"),
    (ssl.SSLCertVerificationError("certificate verify failed"), "environment", "tls"),
    (ConnectionResetError(), "environment", "unreachable"),
    (TimeoutError(), "environment", "timeout"),
    (RuntimeError("anything else"), "environment", "unknown"),
]


@pytest.mark.parametrize(("exc", "error_class", "cause"), KAFKA_CASES)
def test_kafka_and_network_table(exc: BaseException, error_class: str, cause: str) -> None:
    verdict = classify_exception(exc)
    assert (verdict.error_class, verdict.cause) == (error_class, cause)


def test_a_bootstrap_timeout_is_explained_by_what_the_client_logged() -> None:
    timeout = kafka_errors.KafkaTimeoutError("Unable to bootstrap from 127.0.0.1:9092")
    sasl = kafka_errors.SaslAuthenticationFailedError("Authentication failed: Invalid credentials")
    line = kafka_failure_line(timeout, "127.0.0.1:9092", sasl)
    assert line is not None and "authentication failed" in line and "\n" not in line
    refused = kafka_errors.KafkaConnectionError("111 ECONNREFUSED")
    line = kafka_failure_line(timeout, "127.0.0.1:1", refused)
    assert line is not None and "no broker answers" in line and "ECONNREFUSED" in line
    assert kafka_failure_line(ValueError("not Kafka"), "x:1") is None
    # a login refused by a close that overtook the broker's error response
    dropped = kafka_errors.KafkaConnectionError("socket disconnected")
    line = kafka_failure_line(timeout, "127.0.0.1:9092", dropped, sasl=True)
    assert line is not None and "during the login (authentication failed?" in line
    line = kafka_failure_line(timeout, "127.0.0.1:9092", dropped)
    assert line is not None and "no broker answers" in line


def test_blockage_backs_off_reports_and_gives_up() -> None:
    block = Blockage(max_blocked_s=60, max_backoff_s=5, first_backoff_s=0.5)
    assert block.status() == (True, "ready") and block.recover(0.0) is None
    assert block.fail("authentication", "Code: 193. Wrong password", now=100.0) is True
    assert block.fail("authentication", "Code: 193. Wrong password", now=101.0) is False
    delays = []
    for i in range(8):
        block.fail("authentication", "again", now=102.0 + i)
        delays.append(block.retry_at - (102.0 + i))
    assert delays == sorted(delays) and max(delays) == 5  # exponential, capped
    ready, reason = block.status()
    assert not ready and reason.startswith("blocked (authentication)")
    assert block.fail("unreachable", "Connection refused", now=120.0) is True  # a new cause
    assert not block.overdue(159.9) and block.overdue(160.0)  # measured from the first failure
    assert block.recover(130.0) == 30.0 and block.status() == (True, "ready")


def test_the_last_retry_falls_on_the_bound() -> None:
    block = Blockage(max_blocked_s=2, max_backoff_s=5, first_backoff_s=1.5)
    block.fail("unknown_database", "Code: 81.", now=10.0)
    block.fail("unknown_database", "Code: 81.", now=11.5)  # next backoff 3 s would pass 12
    assert block.retry_at == 12.0 and block.overdue(12.0)
