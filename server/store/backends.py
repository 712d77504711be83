"""The two database engines behind one tiny interface: `execute` and `transaction`.

SQL is written once with `?` placeholders; the PostgreSQL side rewrites them to psycopg's `%s`
(the store's SQL never contains a literal `?` or `%`).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit, urlunsplit

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def default_sqlite_path() -> Path:
    """`$XDG_DATA_HOME/edgescore/edgescore.db`, else `~/.local/share/edgescore/edgescore.db`."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "edgescore" / "edgescore.db"


class SqliteBackend:
    kind = "sqlite"

    def __init__(self, path: str) -> None:
        if path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        self.location = path
        # isolation_level=None: autocommit, with explicit BEGIN IMMEDIATE for multi-statement
        # work, so a writer takes the write lock up front instead of failing halfway.
        # check_same_thread=False: the Store serialises access with its own lock.
        self._conn = sqlite3.connect(str(Path(path).expanduser()) if path != ":memory:" else path,
                                     isolation_level=None, check_same_thread=False, timeout=30.0)
        if path != ":memory:":
            # WAL: readers in other processes (e.g. a second server, sqlite3 CLI) never block
            # the writer; NORMAL sync is durable across crashes of the process in WAL mode.
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._in_tx = False

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        cursor = self._conn.execute(sql, tuple(params))
        return cursor.fetchall() if cursor.description else []

    def rowcount(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._conn.execute(sql, tuple(params)).rowcount

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def lock_schema(self) -> None:
        """BEGIN IMMEDIATE already holds the database's write lock."""

    def close(self) -> None:
        self._conn.close()


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresBackend:
    kind = "postgresql"

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError as exc:  # the [server] extra installs it; say so instead of a trace
            raise RuntimeError("a postgresql:// store needs psycopg 3: pip install "
                               "'edgescore[server]' (or 'psycopg[binary]')") from exc
        self._psycopg = psycopg
        self._url = url
        self.location = _hide_password(url)
        self._conn: Optional[Any] = None
        self._connect()

    def _connect(self) -> None:
        self._conn = self._psycopg.connect(self._url, autocommit=True)

    def _connection(self) -> Any:
        # A long-running server outlives database restarts: reconnect a broken connection
        # before the next statement (never inside a transaction, which would lose its work).
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._connect()
        return self._conn

    @staticmethod
    def _sql(sql: str) -> str:
        return sql.replace("?", "%s")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        cursor = self._connection().execute(self._sql(sql), tuple(params))
        return cursor.fetchall() if cursor.description else []

    def rowcount(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._connection().execute(self._sql(sql), tuple(params)).rowcount

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._connection().transaction():
            yield

    def lock_schema(self) -> None:
        # Two servers starting together: the second waits here, then sees the new version.
        self.execute("LOCK TABLE schema_version IN EXCLUSIVE MODE")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


def connect(target: str) -> SqliteBackend | PostgresBackend:
    if target.startswith(POSTGRES_SCHEMES):
        return PostgresBackend(target)
    if target.startswith("sqlite:///"):
        target = target[len("sqlite:///"):] or ":memory:"
    return SqliteBackend(target)
