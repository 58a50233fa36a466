"""Interop with a peer Avro implementation: Apache Avro for Java (org.apache.avro:avro).

Python writes DetectionEvent and Alert with the project's codec; Java decodes them with
``BinaryMessageDecoder``, reports its own fingerprint of the schema, and writes a changed
record back with ``BinaryMessageEncoder``, which Python decodes. Maven resolves the Java
library from Maven Central (cached in ~/.m2 after the first run); javac compiles the
program. Skipped only when java, javac or mvn is not installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from schemas.codec import decode, encode, shared_codec
from schemas.registry import SCHEMA_DIR
from schemas.templates import template_to_bytes

JAVA_DIR = Path(__file__).parent / "java"
MISSING = [tool for tool in ("java", "javac", "mvn") if shutil.which(tool) is None]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(bool(MISSING), reason=f"Java interop needs {', '.join(MISSING)} on PATH"),
]


@pytest.fixture(scope="module")
def java_program(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Resolve avro's classpath with Maven, compile Interop.java; the java command line."""
    work = tmp_path_factory.mktemp("java")
    classpath_file = work / "classpath.txt"
    subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(JAVA_DIR / "pom.xml"),
            "dependency:build-classpath",
            f"-Dmdep.outputFile={classpath_file}",
        ],
        check=True,
        timeout=600,
        capture_output=True,
    )
    classpath = classpath_file.read_text().strip()
    classes = work / "classes"
    sources = sorted(str(p) for p in (JAVA_DIR / "src" / "main" / "java").rglob("*.java"))
    subprocess.run(
        ["javac", "--release", "17", "-d", str(classes), "-cp", classpath, *sources],
        check=True,
        timeout=300,
        capture_output=True,
    )
    return ["java", "-cp", f"{classes}:{classpath}", "lfr.interop.Interop"]


def _detection() -> dict[str, Any]:
    rng = np.random.default_rng(7)
    vector = rng.standard_normal(512).astype(np.float32)
    return {
        "event_id": str(uuid.uuid4()),
        "camera_id": "croydon-cam-07",
        "site_id": "croydon",
        "captured_at": datetime(2025, 10, 14, 9, 30, 12, 345000, tzinfo=UTC),
        "face_quality": 0.8125,
        "template": template_to_bytes(vector / np.linalg.norm(vector)),
        "template_model": "demo-arcface-r100@1",
    }


def _alert() -> dict[str, Any]:
    return {
        "alert_id": str(uuid.uuid4()),
        "event_id": str(uuid.uuid4()),
        "deployment_id": "croydon-2025-10-14",
        "site_id": "croydon",
        "camera_id": "croydon-cam-07",
        "subject_ref": "0f" * 16,
        "watchlist_id": "wl-croydon-2025-10-14",
        "category": "recall_to_prison",
        "score": 0.7321,
        "threshold": 0.64,
        "watchlist_version": 2**40 + 3,
        "template_model": "demo-arcface-r100@1",
        "captured_at": datetime(2025, 10, 14, 9, 30, 12, 345000, tzinfo=UTC),
        "alerted_at": datetime(2025, 10, 14, 9, 30, 12, 901000, tzinfo=UTC),
        "wanted_since": datetime(2024, 2, 1, tzinfo=UTC),
    }


def _millis(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)


@pytest.mark.parametrize("name, make", [("DetectionEvent", _detection), ("Alert", _alert)])
def test_java_reads_python_and_python_reads_java(
    name: str, make: Any, java_program: list[str], tmp_path: Path
) -> None:
    record = make()
    (tmp_path / "in.bin").write_bytes(encode(name, record))
    out_json, out_bin = tmp_path / "out.json", tmp_path / "out.bin"

    result = subprocess.run(
        [
            *java_program,
            str(SCHEMA_DIR / f"{name}.avsc"),
            str(tmp_path / "in.bin"),
            str(out_json),
            str(out_bin),
        ],
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    )

    # Java computed the same fingerprint from the same schema file
    full_name, java_fingerprint = result.stdout.split()
    assert full_name == f"lfr.v1.{name}"
    assert int(java_fingerprint).to_bytes(8, "little") == shared_codec().fingerprint(name)

    # Java decoded every field to the values Python wrote (Avro JSON: bytes as latin-1)
    seen = json.loads(out_json.read_text())
    for field, value in record.items():
        if isinstance(value, datetime):
            assert seen[field] == _millis(value), field
        elif isinstance(value, bytes):
            assert seen[field].encode("latin-1") == value, field
        elif isinstance(value, float):
            assert seen[field] == pytest.approx(value, rel=1e-6), field
        else:
            assert seen[field] == value, field

    # Python decodes what Java wrote, including Java's change, byte for byte the same encoding
    java_bytes = out_bin.read_bytes()
    first = next(iter(record))
    expected = {**record, first: record[first] + "-from-java"}
    assert decode(name, java_bytes) == expected
    assert java_bytes == encode(name, expected)
