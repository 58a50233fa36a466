"""The two ways the project talks to ClickHouse, behind one small protocol.

:class:`NativeDatabase` is a server over the native protocol
(clickhouse-driver); :class:`ChdbDatabase` is chDB, the current engine
in-process, used by tests to run the same SQL on a current release. Everything
above this module (migrator, rollup, retention, report, sink) takes a
:class:`Database` and never knows which.
"""

from __future__ import annotations

import json
import math
import ssl
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Literal, Protocol

from sinks.errors import (
    ClickHouseRefused,
    ClickHouseRejected,
    ClickHouseUnavailable,
    code_in,
    server_error,
)
from sinks.features import ServerFeatures, features_for

Row = tuple[Any, ...]


class Database(Protocol):
    """What the project needs from a ClickHouse server."""

    @property
    def features(self) -> ServerFeatures:
        """Optional features of this server."""
        ...

    def execute(self, sql: str) -> list[Row]:
        """Run one statement; the rows it returns (empty for DDL and INSERT SELECT)."""
        ...

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        data: Sequence[Sequence[Any]],
        dedup_token: str | None = None,
    ) -> None:
        """Insert column-oriented ``data`` (one sequence per column) as one block."""
        ...


class NativeDatabase:
    """A ClickHouse server reached with clickhouse-driver (native protocol)."""

    def __init__(self, **client_kwargs: Any) -> None:
        from clickhouse_driver import Client

        kwargs = {"connect_timeout": 5, "send_receive_timeout": 60, **client_kwargs}
        self._client = Client(**kwargs)
        self._features: ServerFeatures | None = None

    @property
    def features(self) -> ServerFeatures:
        """Features by the server's version (asked once per connection object)."""
        if self._features is None:
            rows = self.execute("SELECT version()")
            self._features = features_for(str(rows[0][0]))
        return self._features

    def execute(self, sql: str) -> list[Row]:
        """Run one statement."""
        return self._call(sql, None, {})

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        data: Sequence[Sequence[Any]],
        dedup_token: str | None = None,
    ) -> None:
        """One columnar INSERT; the token is sent only where the server has it."""
        settings: dict[str, Any] = {}
        if dedup_token is not None and self.features.dedup_token:
            settings["insert_deduplication_token"] = dedup_token
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES"
        self._call(sql, [list(c) for c in data], settings, columnar=True)

    def close(self) -> None:
        """Drop the connection."""
        self._client.disconnect()

    def _call(
        self, sql: str, params: Any, settings: dict[str, Any], columnar: bool = False
    ) -> list[Row]:
        from clickhouse_driver import errors as ch_errors

        try:
            kwargs: dict[str, Any] = {"settings": settings}
            if columnar:
                kwargs["columnar"] = True
            result = (
                self._client.execute(sql, params, **kwargs)
                if params is not None
                else (self._client.execute(sql, **kwargs))
            )
        except ssl.SSLError as exc:
            self._client.disconnect()
            raise ClickHouseRefused(f"{type(exc).__name__}: {exc}", None, "tls") from exc
        except ch_errors.SocketTimeoutError as exc:
            self._client.disconnect()
            raise ClickHouseUnavailable(f"{type(exc).__name__}: {exc}", None, "timeout") from exc
        except (ch_errors.NetworkError, OSError, EOFError) as exc:
            self._client.disconnect()
            text = f"{type(exc).__name__}: {exc}"
            if "SSL" in text or "certificate" in text:
                raise ClickHouseRefused(text, None, "tls") from exc
            raise ClickHouseUnavailable(text) from exc
        except ch_errors.ServerException as exc:
            # the class decides: the rows are bad (rejected) or the environment is (refused)
            raise server_error(server_message(exc.code, exc.message), exc.code) from exc
        except ch_errors.Error as exc:
            # client-side serialisation errors: the block does not fit its columns
            self._client.disconnect()
            raise ClickHouseRejected(f"{type(exc).__name__}: {exc}"[:500], None) from exc
        except (TypeError, ValueError, OverflowError) as exc:
            self._client.disconnect()
            raise ClickHouseRejected(f"{type(exc).__name__}: {exc}"[:500], None) from exc
        return list(result) if isinstance(result, list) else []


def server_message(code: int | None, message: str) -> str:
    """One line from a server exception: its code and first line, without the stack trace."""
    first = (message or "").strip().splitlines()[0] if (message or "").strip() else ""
    first = first.split(" Stack trace:", 1)[0]
    return f"Code: {code}. {first}"[:500]


def sql_literal(value: Any) -> str:
    """A value as a ClickHouse SQL literal (used by chDB inserts and rollup day lists)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("non-finite float")
        return repr(value)
    if isinstance(value, datetime):
        return str(int(value.timestamp()))
    if isinstance(value, date):
        return f"toDate('{value.isoformat()}')"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(sql_literal(v) for v in value) + "]"
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        return f"'{escaped}'"
    raise TypeError(f"no SQL literal for {type(value).__name__}")


class ChdbDatabase:
    """chDB: the current ClickHouse engine in this process, data in ``path``."""

    def __init__(self, path: str) -> None:
        from chdb import session

        self._session = session.Session(path)
        self._features: ServerFeatures | None = None

    @property
    def features(self) -> ServerFeatures:
        """Features of the embedded engine's version."""
        if self._features is None:
            self._features = features_for(str(self.execute("SELECT version()")[0][0]))
        return self._features

    def execute(self, sql: str) -> list[Row]:
        """Run one statement; rows decoded from JSONCompact."""
        settings = " SETTINGS output_format_json_quote_64bit_integers = 0"
        is_query = sql.lstrip().upper().startswith(("SELECT", "WITH", "SHOW"))
        try:
            if is_query:
                result = self._session.query(sql + settings, "JSONCompact")
                text = result.bytes().decode()
                return [tuple(row) for row in json.loads(text)["data"]] if text else []
            self._session.query(sql)
        except RuntimeError as exc:
            message = str(exc).splitlines()[0][:500]
            raise server_error(message, code_in(message)) from exc
        return []

    def insert(
        self,
        table: str,
        columns: Sequence[str],
        data: Sequence[Sequence[Any]],
        dedup_token: str | None = None,
    ) -> None:
        """One INSERT ... VALUES built from the columns."""
        rows = zip(*data, strict=True)
        values = ", ".join("(" + ", ".join(sql_literal(v) for v in row) + ")" for row in rows)
        if not values:
            return
        token = ""
        if dedup_token is not None and self.features.dedup_token:
            token = f" SETTINGS insert_deduplication_token = {sql_literal(dedup_token)}"
        self.execute(f"INSERT INTO {table} ({', '.join(columns)}){token} VALUES {values}")  # noqa: S608

    def close(self) -> None:
        """Release the session."""
        self._session.close()


Role = Literal["admin", "ingest", "analyst"]


def connect(settings: Any, role: Role = "admin", **overrides: Any) -> NativeDatabase:
    """A :class:`NativeDatabase` logged in as ``role``'s user (``overrides`` win).

    ``admin`` migrates and drops partitions, ``ingest`` inserts (and runs the
    rollup's INSERT ... SELECT), ``analyst`` only reads; see docs/analysts.md.
    The connection opens on the first statement.
    """
    return NativeDatabase(**{**settings.clickhouse_config(role), **overrides})
