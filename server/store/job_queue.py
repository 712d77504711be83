"""The latency job queue in PostgreSQL, shared by every server replica on one database.

A replica with an idle agent claims the next job of the agent's class (`SELECT ... FOR UPDATE SKIP
LOCKED`: two replicas never take the same row, and neither waits for the other), holds it under a
lease it renews while it lives, and writes the agent's answer back; NOTIFY wakes the replicas
(a job queued, a job finished, a job to cancel), and a replica whose lease ran out (killed
mid-job) has its jobs queued again for any other. Identical jobs are one row while active (a
unique index on their key), however many replicas their requests came to. The schema is the
store's (migration 2); this keeps a connection of its own, so queue traffic never waits behind
the store's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Optional

QUEUED_CHANNEL = "edgescore_job_queued"     # payload: device class
DONE_CHANNEL = "edgescore_job_done"         # payload: job id
CANCEL_CHANNEL = "edgescore_job_cancel"     # payload: job id
CHANNELS = (QUEUED_CHANNEL, DONE_CHANNEL, CANCEL_CHANNEL)


@dataclass(frozen=True)
class Claimed:
    job_id: str
    device_class: str
    priority: int
    attempts: int
    message: bytes
    artifact: bytes
    subject: str
    job_key: str


@dataclass(frozen=True)
class Finished:
    job_id: str
    state: str
    outcome: str   # JSON of the agent's answer ("" when the job was cancelled or failed here)
    error: str


class SharedQueue:
    def __init__(self, url: str) -> None:
        import psycopg

        self._psycopg = psycopg
        self.url = url
        self._conn = psycopg.connect(url, autocommit=True)
        self._lock = threading.Lock()

    def _run(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            if self._conn.closed or self._conn.broken:
                self._conn = self._psycopg.connect(self.url, autocommit=True)
            cursor = self._conn.execute(sql, tuple(params))
            return cursor.fetchall() if cursor.description else []

    def _tx(self, work: Callable[[Any], Any]) -> Any:
        with self._lock:
            if self._conn.closed or self._conn.broken:
                self._conn = self._psycopg.connect(self.url, autocommit=True)
            with self._conn.transaction():
                return work(self._conn)

    # -- submitting and waiting -----------------------------------------------------------------

    def submit(self, *, job_id: str, job_key: str, device_class: str, fmt: str, priority: int,
               message: bytes, artifact_sha256: str, artifact: bytes, subject: str,
               record: str, waiting: bool) -> tuple[str, bool]:
        """Queue the job, or join the active one with the same key: (job id, joined)."""
        now = time.time()

        def work(conn: Any) -> tuple[str, bool]:
            conn.execute("INSERT INTO artifacts (sha256, data, created_at) VALUES (%s, %s, %s) "
                         "ON CONFLICT (sha256) DO NOTHING", (artifact_sha256, artifact, now))
            inserted = conn.execute(
                "INSERT INTO jobs (job_id, device_class, state, attempts, payload_ref, agent_id, "
                "error, created_at, updated_at, job_key, priority, format, artifact_sha256, "
                "message, subject, waiters) VALUES (%s, %s, 'queued', 0, %s, '', '', %s, %s, %s, "
                "%s, %s, %s, %s, %s, %s) ON CONFLICT (job_key) WHERE state IN "
                "('queued', 'running') DO NOTHING RETURNING job_id",
                (job_id, device_class, record, now, now, job_key, priority, fmt,
                 artifact_sha256, message, subject, int(waiting))).fetchall()
            if inserted:
                conn.execute("SELECT pg_notify(%s, %s)", (QUEUED_CHANNEL, device_class))
                return job_id, False
            row = conn.execute(
                "UPDATE jobs SET waiters = waiters + %s, priority = GREATEST(priority, %s) "
                "WHERE job_key = %s AND state IN ('queued', 'running') RETURNING job_id",
                (int(waiting), priority, job_key)).fetchall()
            if not row:  # it finished in between: try again, as a new job
                raise _Retry()
            return row[0][0], True

        for _ in range(3):
            try:
                return self._tx(work)
            except _Retry:
                continue
        raise RuntimeError(f"could not queue or join job {job_key[:12]}")

    def leave(self, job_id: str) -> tuple[int, str, str]:
        """One waiter fewer: (waiters left, state, owner)."""
        rows = self._run("UPDATE jobs SET waiters = waiters - 1 WHERE job_id = %s "
                         "RETURNING waiters, state, owner", (job_id,))
        return (int(rows[0][0]), rows[0][1], rows[0][2]) if rows else (0, "", "")

    def cancel(self, job_id: str, reason: str) -> None:
        """Nobody waits any more: a queued job fails now; a running one is stopped by its
        owner (CANCEL_CHANNEL), which then finishes it."""
        def work(conn: Any) -> None:
            done = conn.execute(
                "UPDATE jobs SET state = 'failed', error = %s, updated_at = %s, job_key = NULL "
                "WHERE job_id = %s AND state = 'queued' AND waiters <= 0 RETURNING job_id",
                (reason, time.time(), job_id)).fetchall()
            channel = DONE_CHANNEL if done else CANCEL_CHANNEL
            conn.execute("SELECT pg_notify(%s, %s)", (channel, job_id))
        self._tx(work)

    def finished(self, job_ids: Sequence[str]) -> list[Finished]:
        """Those of `job_ids` that have ended."""
        if not job_ids:
            return []
        rows = self._run("SELECT job_id, state, outcome, error FROM jobs WHERE job_id = ANY(%s) "
                         "AND state NOT IN ('queued', 'running')", (list(job_ids),))
        return [Finished(*row) for row in rows]

    # -- dispatching ----------------------------------------------------------------------------

    def claim(self, replica: str, device_class: str, formats: Sequence[str], lease_s: float
              ) -> Optional[Claimed]:
        """The next queued job of the class in one of `formats`, now running under `replica`."""
        now = time.time()
        rows = self._run(
            "UPDATE jobs SET state = 'running', owner = %s, lease_until = %s, "
            "attempts = attempts + 1, updated_at = %s WHERE job_id = ("
            "  SELECT job_id FROM jobs WHERE device_class = %s AND state = 'queued' "
            "  AND format = ANY(%s) AND message IS NOT NULL "
            "  ORDER BY priority DESC, created_at LIMIT 1 FOR UPDATE SKIP LOCKED) "
            "RETURNING job_id, device_class, priority, attempts, message, artifact_sha256, "
            "subject, job_key",
            (replica, now + lease_s, now, device_class, list(formats)))
        if not rows:
            return None
        job_id, cls, priority, attempts, message, sha, subject, key = rows[0]
        data = self._run("SELECT data FROM artifacts WHERE sha256 = %s", (sha,))
        if not data:
            self.finish(job_id, "failed", "", "its artifact is gone from the store")
            return None
        return Claimed(job_id, cls, int(priority), int(attempts), bytes(message),
                       bytes(data[0][0]), subject, key)

    def finish(self, job_id: str, state: str, outcome: str, error: str = "",
               agent_id: str = "") -> None:
        """The job ended (done or failed): keep the answer, free the key, tell the waiters, and
        drop its artifact once no active job needs it."""
        def work(conn: Any) -> None:
            rows = conn.execute(
                "UPDATE jobs SET state = %s, outcome = %s, error = %s, agent_id = %s, "
                "owner = '', job_key = NULL, updated_at = %s WHERE job_id = %s "
                "AND state IN ('queued', 'running') RETURNING artifact_sha256",
                (state, outcome, error, agent_id, time.time(), job_id)).fetchall()
            if rows:
                conn.execute(
                    "DELETE FROM artifacts WHERE sha256 = %s AND NOT EXISTS (SELECT 1 FROM jobs "
                    "WHERE artifact_sha256 = %s AND state IN ('queued', 'running'))",
                    (rows[0][0], rows[0][0]))
            conn.execute("SELECT pg_notify(%s, %s)", (DONE_CHANNEL, job_id))
        self._tx(work)

    def requeue(self, job_id: str, reason: str) -> None:
        """Its agent was lost or its replica is stopping: any replica may take it again."""
        def work(conn: Any) -> None:
            rows = conn.execute(
                "UPDATE jobs SET state = 'queued', owner = '', lease_until = 0, error = %s, "
                "updated_at = %s WHERE job_id = %s AND state = 'running' RETURNING device_class",
                (reason, time.time(), job_id)).fetchall()
            if rows:
                conn.execute("SELECT pg_notify(%s, %s)", (QUEUED_CHANNEL, rows[0][0]))
        self._tx(work)

    def renew(self, replica: str, lease_s: float) -> None:
        self._run("UPDATE jobs SET lease_until = %s WHERE owner = %s AND state = 'running'",
                  (time.time() + lease_s, replica))

    def expire(self) -> int:
        """Queue again every running job whose replica stopped renewing its lease."""
        def work(conn: Any) -> int:
            rows = conn.execute(
                "UPDATE jobs SET state = 'queued', owner = '', lease_until = 0, "
                "error = 'its server replica stopped', updated_at = %s "
                "WHERE state = 'running' AND owner <> '' AND lease_until < %s "
                "RETURNING device_class", (time.time(), time.time())).fetchall()
            for cls in {row[0] for row in rows}:
                conn.execute("SELECT pg_notify(%s, %s)", (QUEUED_CHANNEL, cls))
            return len(rows)
        return self._tx(work)

    def listen(self, on_notify: Callable[[str, str], None], stop: threading.Event) -> None:
        """Deliver notifications until `stop` (blocking: run it on a thread of its own)."""
        while not stop.is_set():
            try:
                with self._psycopg.connect(self.url, autocommit=True) as conn:
                    for channel in CHANNELS:
                        conn.execute(f"LISTEN {channel}")
                    on_notify("", "")  # (re)connected: notifications may have been missed
                    while not stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            on_notify(note.channel, note.payload)
            except self._psycopg.Error:
                stop.wait(1.0)  # the database restarts: listen again

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class _Retry(Exception):
    pass
