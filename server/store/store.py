"""The Store: cached proxy values, measurements, job records and agents, on SQLite or PostgreSQL.

Every public method holds one lock for its whole database work: the gRPC server is threaded,
writes are tiny, and one serialised connection avoids "database is locked" races between our own
threads (other processes are handled by WAL and the busy timeout on SQLite, by MVCC on PostgreSQL).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Optional, Union

from edgescore.server.store.backends import (
    PostgresBackend,
    SqliteBackend,
    connect,
    default_sqlite_path,
)
from edgescore.server.store.migrations import MIGRATIONS, VERSION_TABLE, Migration
from edgescore.server.store.records import (
    JOB_STATES,
    AgentRecord,
    JobRecord,
    MeasurementKey,
    MeasurementRecord,
    ProxyKey,
    ProxyRecord,
    canonical_json,
    storable_float,
)

_PROXY_COLS = ("arch_hash, space, proxy, settings_json, dataset_id, seed, code_version, value, "
               "error, flags_json, seconds, created_at")
_MEAS_COLS = ("artifact_sha256, device_class, runtime, runtime_version, settings_json, "
              "stats_json, agent_id, space, arch, created_at")
_JOB_COLS = ("job_id, device_class, state, attempts, payload_ref, agent_id, error, created_at, "
             "updated_at")


def _proxy_record(row: tuple) -> ProxyRecord:
    key = ProxyKey(row[0], row[1], row[2], row[3], row[4], int(row[5]), row[6])
    return ProxyRecord(key, row[7], row[8], tuple(json.loads(row[9])), row[10], row[11])


def _measurement_record(row: tuple) -> MeasurementRecord:
    stats = json.loads(row[5])
    key = MeasurementKey(row[0], row[1], row[2], row[3], row[4],
                         row[8] if stats.get("by_architecture") else "")
    return MeasurementRecord(key, stats, row[6], row[7], row[8], row[9])


def _job_record(row: tuple) -> JobRecord:
    return JobRecord(row[0], row[1], row[2], int(row[3]), *row[4:])


class Store:
    def __init__(self, backend: SqliteBackend | PostgresBackend,
                 migrations: Iterable[Migration] = MIGRATIONS) -> None:
        self._db = backend
        self._lock = threading.RLock()
        self.kind: str = backend.kind
        self.location: str = backend.location  # the path, or the URL without its password
        self._migrate(tuple(migrations))

    # ---- lifecycle -----------------------------------------------------------------------

    def _migrate(self, migrations: tuple[Migration, ...]) -> None:
        with self._lock:
            self._db.execute(VERSION_TABLE)
            with self._db.transaction():
                self._db.lock_schema()
                current = self._db.execute("SELECT MAX(version) FROM schema_version")[0][0] or 0
                for migration in sorted(migrations, key=lambda m: m.version):
                    if migration.version <= current:
                        continue
                    for statement in migration.statements:
                        self._db.execute(statement)
                    self._db.execute(
                        "INSERT INTO schema_version (version, description, applied_at) "
                        "VALUES (?, ?, ?)", (migration.version, migration.description, time.time()))

    def schema_version(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT MAX(version) FROM schema_version")[0][0] or 0)

    def applied_migrations(self) -> list[tuple[int, str, float]]:
        with self._lock:
            rows = self._db.execute("SELECT version, description, applied_at FROM schema_version "
                                    "ORDER BY version")
        return [(int(v), d, float(t)) for v, d, t in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- proxy results ---------------------------------------------------------------------

    def get_proxy_result(self, key: ProxyKey) -> Optional[ProxyRecord]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_PROXY_COLS} FROM proxy_results WHERE key_digest = ?", (key.digest,))
        return _proxy_record(rows[0]) if rows else None

    def put_proxy_result(self, key: ProxyKey, value: Optional[float], *, error: str = "",
                         flags: Iterable[str] = (), seconds: float = 0.0) -> bool:
        """Store one value; False (and nothing changed) when the key is already stored: the
        first answer for a key wins, as identical inputs give identical values."""
        row = (key.digest, key.arch_hash, key.space, key.proxy, key.settings, key.dataset_id,
               str(key.seed), key.code_version, storable_float(value), error,
               json.dumps(list(flags)), float(seconds), time.time())
        with self._lock:
            return self._db.rowcount(
                f"INSERT INTO proxy_results (key_digest, {_PROXY_COLS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (key_digest) DO NOTHING", row) == 1

    def proxy_results_for(self, space: str, arch_hash: str) -> list[ProxyRecord]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_PROXY_COLS} FROM proxy_results WHERE space = ? AND arch_hash = ? "
                "ORDER BY created_at", (space, arch_hash))
        return [_proxy_record(row) for row in rows]

    # ---- measurements ----------------------------------------------------------------------

    def get_measurement(self, key: MeasurementKey) -> Optional[MeasurementRecord]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_MEAS_COLS} FROM measurements WHERE key_digest = ?", (key.digest,))
        return _measurement_record(rows[0]) if rows else None

    def put_measurement(self, key: MeasurementKey, stats: Mapping[str, Any], *,
                        agent_id: str = "", space: str = "", arch: str = "") -> bool:
        """Store one measurement (`stats`: LatencyStats fields, e.g. median_ms); `space`/`arch`
        (canonical string) let the latency predictor learn from it. False when already stored."""
        row = (key.digest, key.artifact_sha256, key.device_class, key.runtime,
               key.runtime_version, key.settings, json.dumps(dict(stats), sort_keys=True),
               agent_id, space, arch, time.time())
        with self._lock:
            return self._db.rowcount(
                f"INSERT INTO measurements (key_digest, {_MEAS_COLS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (key_digest) DO NOTHING", row) == 1

    def find_measurements(self, artifact_sha256: str, device_class: str,
                          settings: Any = None) -> list[MeasurementRecord]:
        """Measurements of an artifact on a class, any runtime version, newest first; with
        `settings`, only those taken under exactly these settings."""
        sql = (f"SELECT {_MEAS_COLS} FROM measurements "
               "WHERE artifact_sha256 = ? AND device_class = ?")
        params: list[Any] = [artifact_sha256, device_class]
        if settings is not None:
            sql += " AND settings_json = ?"
            params.append(settings if isinstance(settings, str) else canonical_json(settings))
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY created_at DESC", params)
        return [_measurement_record(row) for row in rows]

    def measurements_for_device(self, device_class: str, space: Optional[str] = None,
                                since: Optional[float] = None) -> list[MeasurementRecord]:
        """Measurements of one class whose architecture is known, oldest first (predictor data);
        `since`: only those stored at or after that time (created_at), for readers that keep up
        (rows stored in the same instant come again: dedupe them by key)."""
        sql = f"SELECT {_MEAS_COLS} FROM measurements WHERE device_class = ? AND arch <> ''"
        params: list[Any] = [device_class]
        if space is not None:
            sql += " AND space = ?"
            params.append(space)
        if since is not None:
            sql += " AND created_at >= ?"
            params.append(since)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY created_at", params)
        return [_measurement_record(row) for row in rows]

    def measurement_counts(self) -> dict[str, int]:
        """Stored measurements per device class."""
        with self._lock:
            rows = self._db.execute(
                "SELECT device_class, COUNT(*) FROM measurements GROUP BY device_class")
        return {row[0]: int(row[1]) for row in rows}

    # ---- jobs ------------------------------------------------------------------------------

    def add_job(self, job_id: str, device_class: str, payload_ref: str = "") -> JobRecord:
        """Record a queued job; adding an existing id changes nothing and returns it as stored."""
        now = time.time()
        with self._lock:
            self._db.execute(
                f"INSERT INTO jobs ({_JOB_COLS}) VALUES (?, ?, 'queued', 0, ?, '', '', ?, ?) "
                "ON CONFLICT (job_id) DO NOTHING", (job_id, device_class, payload_ref, now, now))
            job = self.get_job(job_id)
        assert job is not None
        return job

    def get_job(self, job_id: str) -> Optional[JobRecord]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_JOB_COLS} FROM jobs WHERE job_id = ?", (job_id,))
        return _job_record(rows[0]) if rows else None

    def start_job(self, job_id: str, agent_id: str) -> bool:
        """queued -> running on `agent_id`, counting an attempt; False if it was not queued."""
        with self._lock:
            return self._db.rowcount(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, agent_id = ?, "
                "updated_at = ? WHERE job_id = ? AND state = 'queued'",
                (agent_id, time.time(), job_id)) == 1

    def finish_job(self, job_id: str, ok: bool, error: str = "") -> bool:
        """-> done (ok) or failed; False if it had already finished (a late duplicate result)."""
        state = "done" if ok else "failed"
        with self._lock:
            return self._db.rowcount(
                "UPDATE jobs SET state = ?, error = ?, updated_at = ? "
                "WHERE job_id = ? AND state IN ('queued', 'running')",
                (state, error, time.time(), job_id)) == 1

    def requeue_job(self, job_id: str, error: str = "") -> bool:
        """running -> queued (its agent was lost); False if it was not running."""
        with self._lock:
            return self._db.rowcount(
                "UPDATE jobs SET state = 'queued', agent_id = '', error = ?, updated_at = ? "
                "WHERE job_id = ? AND state = 'running'", (error, time.time(), job_id)) == 1

    def requeue_inflight(self) -> list[JobRecord]:
        """At server start: every job left running by a previous process goes back to queued.
        Returns them (oldest first) so the scheduler can put them back in its queues."""
        with self._lock, self._db.transaction():
            rows = self._db.execute(
                f"SELECT {_JOB_COLS} FROM jobs WHERE state = 'running' ORDER BY created_at")
            self._db.execute(
                "UPDATE jobs SET state = 'queued', agent_id = '', error = 'server restarted', "
                "updated_at = ? WHERE state = 'running'", (time.time(),))
        return [self.get_job(row[0]) for row in rows]  # type: ignore[misc]

    def jobs(self, state: Optional[str] = None,
             device_class: Optional[str] = None) -> list[JobRecord]:
        if state is not None and state not in JOB_STATES:
            raise ValueError(f"unknown job state {state!r}; expected one of {JOB_STATES}")
        sql, params = f"SELECT {_JOB_COLS} FROM jobs WHERE 1 = 1", []
        if state is not None:
            sql += " AND state = ?"
            params.append(state)
        if device_class is not None:
            sql += " AND device_class = ?"
            params.append(device_class)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY created_at, job_id", params)
        return [_job_record(row) for row in rows]

    # ---- agents ----------------------------------------------------------------------------

    def agent_seen(self, agent_id: str, device_class: str,
                   capabilities: Optional[Mapping[str, Any]] = None) -> None:
        """Record that an agent registered or sent a heartbeat (first_seen is kept)."""
        now = time.time()
        with self._lock:
            self._db.execute(
                "INSERT INTO agents (agent_id, device_class, capabilities_json, first_seen, "
                "last_seen) VALUES (?, ?, ?, ?, ?) ON CONFLICT (agent_id) DO UPDATE SET "
                "device_class = excluded.device_class, "
                "capabilities_json = excluded.capabilities_json, last_seen = excluded.last_seen",
                (agent_id, device_class, json.dumps(dict(capabilities or {}), sort_keys=True),
                 now, now))

    def agents_seen(self, device_class: Optional[str] = None) -> list[AgentRecord]:
        sql, params = ("SELECT agent_id, device_class, capabilities_json, first_seen, last_seen "
                       "FROM agents"), []
        if device_class is not None:
            sql += " WHERE device_class = ?"
            params.append(device_class)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY agent_id", params)
        return [AgentRecord(a, c, json.loads(caps), f, s) for a, c, caps, f, s in rows]


def open_store(target: Union[str, Path, None] = None, *,
               migrations: Iterable[Migration] = MIGRATIONS) -> Store:
    """Open (creating and migrating as needed) the store at `target`: None for the default
    SQLite file (see `default_sqlite_path`), a path or `sqlite:///path`, ":memory:", or a
    `postgresql://user:pass@host:port/db` URL."""
    location = str(default_sqlite_path() if target is None else target)
    return Store(connect(location), migrations)
