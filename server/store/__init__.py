"""Persistent results: proxy values, latency measurements, jobs and agents (SQLite or PostgreSQL).

    store = open_store()                        # ~/.local/share/edgescore/edgescore.db
    store = open_store("postgresql://u:p@host/db")
    key = ProxyKey.make(arch.arch_hash, arch.space, "synflow", resolved_settings)
    if (hit := store.get_proxy_result(key)) is None:
        store.put_proxy_result(key, value, flags=flags, seconds=elapsed)
"""

from __future__ import annotations

from edgescore.server.store.backends import default_sqlite_path
from edgescore.server.store.migrations import LATEST_VERSION, MIGRATIONS, Migration
from edgescore.server.store.records import (
    JOB_STATES,
    AgentRecord,
    JobRecord,
    MeasurementKey,
    MeasurementRecord,
    ProxyKey,
    ProxyRecord,
    canonical_json,
)
from edgescore.server.store.store import Store, open_store

__all__ = [
    "JOB_STATES", "LATEST_VERSION", "MIGRATIONS", "AgentRecord", "JobRecord", "MeasurementKey",
    "MeasurementRecord", "Migration", "ProxyKey", "ProxyRecord", "Store", "canonical_json",
    "default_sqlite_path", "open_store",
]
