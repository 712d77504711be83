"""Versioned schema migrations, written once for SQLite and PostgreSQL alike.

Each migration is an ordered list of SQL statements in the common subset of both dialects (TEXT,
BIGINT, DOUBLE PRECISION, composite indexes; no AUTOINCREMENT/SERIAL, no engine-specific types).
A migration's number is recorded in `schema_version` in the same transaction as its statements,
so a crash leaves either all of it or none. Never edit a released migration: append a new one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at DOUBLE PRECISION NOT NULL
)"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "proxy results, measurements, jobs, agents", (
        # Keys are long (settings JSON), so the primary key is their sha256 (`digest`); the key
        # parts stay as columns for queries and for reading the database by hand.
        """CREATE TABLE proxy_results (
            key_digest TEXT PRIMARY KEY,
            arch_hash TEXT NOT NULL,
            space TEXT NOT NULL,
            proxy TEXT NOT NULL,
            settings_json TEXT NOT NULL,
            dataset_id TEXT NOT NULL,
            seed TEXT NOT NULL,
            code_version TEXT NOT NULL,
            value DOUBLE PRECISION,
            error TEXT NOT NULL,
            flags_json TEXT NOT NULL,
            seconds DOUBLE PRECISION NOT NULL,
            created_at DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX proxy_results_arch ON proxy_results (space, arch_hash)",
        """CREATE TABLE measurements (
            key_digest TEXT PRIMARY KEY,
            artifact_sha256 TEXT NOT NULL,
            device_class TEXT NOT NULL,
            runtime TEXT NOT NULL,
            runtime_version TEXT NOT NULL,
            settings_json TEXT NOT NULL,
            stats_json TEXT NOT NULL,
            agent_id TEXT NOT NULL,
            space TEXT NOT NULL,
            arch TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX measurements_artifact ON measurements (artifact_sha256, device_class)",
        "CREATE INDEX measurements_device ON measurements (device_class, created_at)",
        """CREATE TABLE jobs (
            job_id TEXT PRIMARY KEY,
            device_class TEXT NOT NULL,
            state TEXT NOT NULL,
            attempts BIGINT NOT NULL,
            payload_ref TEXT NOT NULL,
            agent_id TEXT NOT NULL,
            error TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL
        )""",
        "CREATE INDEX jobs_state ON jobs (state, device_class, created_at)",
        """CREATE TABLE agents (
            agent_id TEXT PRIMARY KEY,
            device_class TEXT NOT NULL,
            capabilities_json TEXT NOT NULL,
            first_seen DOUBLE PRECISION NOT NULL,
            last_seen DOUBLE PRECISION NOT NULL
        )""",
    )),
    Migration(2, "a latency job queue several server replicas share (PostgreSQL)", (
        # job_key: the job's sharing key (artifact, class, settings, spelling), digested; NULL for
        # jobs of a single server, so the index below only ever binds the shared queue's.
        "ALTER TABLE jobs ADD COLUMN job_key TEXT",
        "ALTER TABLE jobs ADD COLUMN priority BIGINT NOT NULL DEFAULT 0",
        "ALTER TABLE jobs ADD COLUMN format TEXT NOT NULL DEFAULT 'onnx'",
        "ALTER TABLE jobs ADD COLUMN artifact_sha256 TEXT NOT NULL DEFAULT ''",
        # The Job message without the artifact's bytes (those are in `artifacts`), and what its
        # measurement is of (space, spellings, shape): any replica can dispatch and store it.
        "ALTER TABLE jobs ADD COLUMN message BYTEA",
        "ALTER TABLE jobs ADD COLUMN subject TEXT NOT NULL DEFAULT ''",
        # The replica whose agent runs it, until when (renewed while the replica lives).
        "ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE jobs ADD COLUMN lease_until DOUBLE PRECISION NOT NULL DEFAULT 0",
        # Requests waiting for it, on any replica: the last one to leave cancels it.
        "ALTER TABLE jobs ADD COLUMN waiters BIGINT NOT NULL DEFAULT 0",
        # The agent's answer (JSON), for the replicas whose requests wait on it.
        "ALTER TABLE jobs ADD COLUMN outcome TEXT NOT NULL DEFAULT ''",
        "CREATE UNIQUE INDEX jobs_active_key ON jobs (job_key) "
        "WHERE state IN ('queued', 'running')",
        "CREATE INDEX jobs_claim ON jobs (device_class, state, priority, created_at)",
        """CREATE TABLE artifacts (
            sha256 TEXT PRIMARY KEY,
            data BYTEA NOT NULL,
            created_at DOUBLE PRECISION NOT NULL
        )""",
    )),
)

LATEST_VERSION = MIGRATIONS[-1].version
