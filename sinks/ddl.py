"""Rendering migration SQL for one server: pure functions over text.

Migration files are written for a current server with three markers that
rendering resolves by :class:`~sinks.features.ServerFeatures`:

- ``{db}``: the database name (validated as an identifier);
- ``LowCardinality(T)``: kept where supported, else plain ``T``;
- ``{ttl:EXPR}``: ``TTL EXPR`` where supported, else nothing;
- ``{dedup_window}``: ``, non_replicated_deduplication_window = N`` inside a
  ``SETTINGS`` list where insert deduplication tokens work, else nothing.

Statements are separated by a ``;`` at the end of a line.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from sinks.errors import MigrationError
from sinks.features import ServerFeatures

DEDUP_WINDOW = 1000
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LOW_CARDINALITY = re.compile(r"LowCardinality\(([A-Za-z0-9_]+)\)")
_TTL = re.compile(r"\{ttl:([^}]*)\}")
_FILE_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One numbered migration file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """sha256 of the file text: an applied migration must never change."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def check_identifier(name: str) -> str:
    """``name`` if it is a plain SQL identifier, else :class:`MigrationError`."""
    if not _IDENT.match(name):
        raise MigrationError(f"not a plain identifier: {name!r}")
    return name


def parse_file_name(file_name: str) -> tuple[int, str]:
    """``("001_tables.sql")`` -> ``(1, "tables")``."""
    m = _FILE_NAME.match(file_name)
    if not m:
        raise MigrationError(f"migration file name must be NNN_name.sql: {file_name!r}")
    return int(m.group(1)), m.group(2)


def render(sql: str, features: ServerFeatures, database: str) -> str:
    """The SQL with every marker resolved for this server and database."""
    text = sql.replace("{db}", check_identifier(database))
    if not features.low_cardinality:
        text = _LOW_CARDINALITY.sub(r"\1", text)
    text = _TTL.sub((lambda m: "TTL " + m.group(1).strip()) if features.ttl else "", text)
    window = f", non_replicated_deduplication_window = {DEDUP_WINDOW}"
    text = text.replace("{dedup_window}", window if features.dedup_token else "")
    if "{" in text and re.search(r"\{[a-z_]+[:}]", text):
        raise MigrationError("unresolved marker in migration SQL")
    return text


def split_statements(sql: str) -> list[str]:
    """Statements of a rendered file: split at ``;`` ending a line, comments dropped."""
    statements: list[str] = []
    current: list[str] = []
    for line in sql.splitlines():
        stripped = line.strip()
        if stripped.startswith("--") or not stripped:
            continue
        current.append(line)
        if stripped.endswith(";"):
            statement = "\n".join(current).strip().rstrip(";").strip()
            if statement:
                statements.append(statement)
            current = []
    tail = "\n".join(current).strip()
    if tail:
        statements.append(tail)
    return statements
