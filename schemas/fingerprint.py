"""CRC-64-AVRO, the 64-bit Rabin fingerprint of Avro single-object encoding.

Written out here (it is a dozen lines) so the framing does not depend on how
a library chooses to render fingerprints; the Java interop test pins it to
``SchemaNormalization.parsingFingerprint64``.
"""

from __future__ import annotations

import struct

_EMPTY = 0xC15D213AA4D7A795


def _table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        fp = byte
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY & -(fp & 1))
        table.append(fp)
    return tuple(table)


_TABLE = _table()


def crc64_avro(data: bytes) -> int:
    """The CRC-64-AVRO fingerprint of ``data`` as an unsigned 64-bit integer."""
    fp = _EMPTY
    for byte in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ byte) & 0xFF]
    return fp


def fingerprint_bytes(canonical_form: str) -> bytes:
    """The 8 little-endian bytes that follow ``C3 01`` in a single-object encoding."""
    return struct.pack("<Q", crc64_avro(canonical_form.encode("utf-8")))
