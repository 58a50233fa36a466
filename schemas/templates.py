"""Biometric templates on the wire: little-endian float16 vectors.

float16 halves the bytes of a 512-d template (1 KiB) at a precision far finer
than the spread of match scores; arithmetic is done in float32.
"""

from __future__ import annotations

import numpy as np

from schemas.errors import TemplateError

WIRE_DTYPE = np.dtype("<f2")


def template_to_bytes(vec: np.ndarray) -> bytes:
    """Serialise a 1-d vector as little-endian float16 bytes."""
    array = np.asarray(vec)
    if array.ndim != 1 or array.size == 0:
        raise TemplateError(f"a template is a non-empty 1-d vector, got shape {array.shape}")
    return array.astype(WIRE_DTYPE).tobytes()


def template_from_bytes(b: bytes) -> np.ndarray:
    """Parse little-endian float16 bytes into a float32 vector."""
    if len(b) == 0 or len(b) % WIRE_DTYPE.itemsize:
        raise TemplateError(f"a float16 template needs a non-zero even length, got {len(b)} bytes")
    return np.frombuffer(b, dtype=WIRE_DTYPE).astype(np.float32)
