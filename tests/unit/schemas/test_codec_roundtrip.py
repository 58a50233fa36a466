"""Round trips, type checks, framing and schema evolution of schemas.codec."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from schemas.codec import MAGIC, Codec, decode, encode, shared_codec
from schemas.errors import EncodeError, UnknownFingerprintError, UnknownSchemaError
from schemas.fingerprint import crc64_avro
from schemas.registry import SCHEMA_DIR, load_schema_set
from tests.unit.schemas.avro_strategies import RECORD_NAMES, detection, records

EXPECTED_RECORDS = {
    "DetectionEvent",
    "WatchlistEntry",
    "OperationWindow",
    "Adjudication",
    "Scan",
    "Alert",
    "Outcome",
    "DeadLetter",
}


def test_all_contract_records_are_packaged() -> None:
    assert set(RECORD_NAMES) == EXPECTED_RECORDS


def test_crc64_avro_matches_the_specification_test_vector() -> None:
    # Avro's Java test suite: parsingFingerprint64 of the schema "int"
    assert crc64_avro(b'"int"') == 8247732601305521295


def _round_trip_test(name: str) -> Any:
    @settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
    @given(record=records(name))
    def test(record: dict[str, Any]) -> None:
        data = encode(name, record)
        assert data[:2] == MAGIC
        assert data[2:10] == shared_codec().fingerprint(name)
        assert decode(name, data) == record

    test.__name__ = f"test_round_trip_{name}"
    return test


for _name in sorted(EXPECTED_RECORDS):
    globals()[f"test_round_trip_{_name}"] = _round_trip_test(_name)


def test_epoch_millis_encode_to_the_same_instant_as_datetimes() -> None:
    record = detection()
    as_millis = {**record, "captured_at": int(record["captured_at"].timestamp() * 1000)}
    assert encode("DetectionEvent", as_millis) == encode("DetectionEvent", record)


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"captured_at": 1.5e12}, "captured_at"),  # fastavro alone would truncate it
        ({"face_quality": "high"}, "face_quality"),
        ({"template": "not bytes"}, "template"),
        ({"event_id": 42}, "event_id"),
        ({"template_model": None}, "template_model"),
    ],
)
def test_encode_rejects_wrong_types(change: dict[str, Any], expected: str) -> None:
    with pytest.raises(EncodeError, match=expected):
        encode("DetectionEvent", {**detection(), **change})


def test_encode_rejects_missing_fields_and_unknown_enum_symbols() -> None:
    record = detection()
    del record["site_id"]
    with pytest.raises(EncodeError, match="site_id: missing"):
        encode("DetectionEvent", record)
    from tests.unit.schemas.avro_strategies import watchlist_entry

    with pytest.raises(EncodeError, match="op"):
        encode("WatchlistEntry", watchlist_entry(op="DELETE"))
    with pytest.raises(EncodeError, match="camera_ids"):
        from tests.unit.schemas.avro_strategies import operation_window

        encode("OperationWindow", operation_window(camera_ids="cam-1"))
    with pytest.raises(EncodeError, match="watchlist_size"):
        encode("OperationWindow", operation_window(watchlist_size=2**31))


def test_encode_error_never_echoes_the_value() -> None:
    secret = "subject-ABC-123"
    with pytest.raises(EncodeError) as caught:
        from tests.unit.schemas.avro_strategies import watchlist_entry

        encode("WatchlistEntry", watchlist_entry(wanted_since=secret))
    assert secret not in str(caught.value)


def test_unknown_record_name_is_a_typed_error() -> None:
    with pytest.raises(UnknownSchemaError):
        encode("Selfie", {})
    with pytest.raises(UnknownSchemaError):
        decode("Selfie", encode("DetectionEvent", detection()))


def test_confluent_framing_round_trip() -> None:
    codec = shared_codec()
    record = detection()
    data = codec.encode_confluent("DetectionEvent", record, schema_id=17)
    assert data[:5] == b"\x00" + struct.pack(">I", 17)
    assert codec.decode_confluent("DetectionEvent", data, schema_ids={17: 1}) == record
    with pytest.raises(UnknownFingerprintError):
        codec.decode_confluent("DetectionEvent", data, schema_ids={18: 1})


# --- evolution: a reader of version N reads N-1 and N+1 ---------------------


def _evolved_root(tmp_path: Path, *, publish_v2: bool) -> Path:
    """A copy of the schemas where DetectionEvent v2 adds an optional field."""
    root = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    v2 = json.loads((root / "DetectionEvent.avsc").read_text())
    v2["fields"].append(
        {"name": "frame_seq", "type": ["null", "long"], "default": None, "doc": "Frame number."}
    )
    (root / "DetectionEvent.avsc").write_text(json.dumps(v2))
    if publish_v2:
        (root / "history" / "DetectionEvent" / "v2.avsc").write_text(json.dumps(v2))
    return root


def test_new_reader_reads_old_writer(tmp_path: Path) -> None:
    new = Codec(load_schema_set(_evolved_root(tmp_path, publish_v2=True)))
    old_bytes = encode("DetectionEvent", detection())
    assert new.decode("DetectionEvent", old_bytes)["frame_seq"] is None
    assert new.encode("DetectionEvent", {**detection(), "frame_seq": 9}, version=1)


def test_old_reader_reads_new_writer_once_history_is_shipped(tmp_path: Path) -> None:
    schema_set = load_schema_set(_evolved_root(tmp_path, publish_v2=True))
    producer = Codec(schema_set)
    consumer = Codec(schema_set, reader_versions={"DetectionEvent": 1})
    record = {**detection(), "frame_seq": 41}
    decoded = consumer.decode("DetectionEvent", producer.encode("DetectionEvent", record))
    assert decoded == {k: v for k, v in record.items() if k != "frame_seq"}
    # and a pinned service still writes v1 by default
    assert consumer.encode("DetectionEvent", detection())[2:10] == consumer.fingerprint(
        "DetectionEvent", 1
    )


def test_packaged_codec_does_not_know_a_future_fingerprint(tmp_path: Path) -> None:
    new = Codec(load_schema_set(_evolved_root(tmp_path, publish_v2=True)))
    with pytest.raises(UnknownFingerprintError):
        decode("DetectionEvent", new.encode("DetectionEvent", detection()))
