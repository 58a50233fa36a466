"""Pseudonymous subject references: what an alert carries instead of a subject id."""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr

REF_LENGTH = 32
"""Hex characters kept of the HMAC-SHA256 (128 bits: collision-free at watchlist scale)."""


class Pseudonymiser:
    """Turns subject ids into ``subject_ref`` under a secret key."""

    def __init__(self, key: SecretStr | bytes) -> None:
        raw = key.get_secret_value().encode() if isinstance(key, SecretStr) else key
        if not raw:
            raise ValueError("the pseudonym key is empty")
        self._key = raw

    def __repr__(self) -> str:
        return "Pseudonymiser(key=**********)"

    def subject_ref(self, subject_id: str) -> str:
        """HMAC-SHA256 of the subject id, hex, first :data:`REF_LENGTH` characters."""
        digest = hmac.new(self._key, subject_id.encode("utf-8"), hashlib.sha256).hexdigest()
        return digest[:REF_LENGTH]
