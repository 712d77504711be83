"""One connection attempt of an agent: a bidi call whose request iterator drains a queue (so
heartbeats, results and failures are sent from other threads), a ticker thread (heartbeats,
registration timeout, stop) and a worker thread that runs jobs one at a time."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from edgescore.device_agent.thermal import read_env
from edgescore.device_agent.worker import CANCELLED_DETAIL
from edgescore.v1 import agent_pb2, common_pb2

if TYPE_CHECKING:
    from edgescore.device_agent.connection import AgentConnection

log = logging.getLogger(__name__)

_TICK_S = 0.1


class Session:
    """State of one connection attempt; closed exactly once by AgentConnection."""

    def __init__(self, conn: AgentConnection) -> None:
        self.conn = conn
        self.out_q: queue.Queue = queue.Queue()
        self.jobs: queue.Queue = queue.Queue()
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.call = None
        self.registered = False
        self.register_timed_out = False
        self.interval = conn.heartbeat_fallback
        self.current_job = ""
        self.current_cancel: threading.Event | None = None
        self.cancelled: set[str] = set()

    def send(self, msg: agent_pb2.AgentMessage) -> None:
        if not self.done.is_set():
            self.out_q.put(msg)

    def requests(self) -> Iterator[agent_pb2.AgentMessage]:
        while True:
            msg = self.out_q.get()
            if msg is None:  # sentinel from close(): lets gRPC's sender thread finish
                return
            yield msg

    def handle(self, msg: agent_pb2.ServerMessage) -> None:
        kind = msg.WhichOneof("msg")
        if kind == "registered":
            reg = msg.registered
            if reg.agent_id:
                self.conn.agent_id = reg.agent_id
            if reg.heartbeat_interval_seconds > 0:
                self.interval = reg.heartbeat_interval_seconds
            self.registered = True
            self.conn.metrics.set_connected(True)
            log.info(
                "registered as %s (server %s), heartbeat every %.1fs",
                self.conn.agent_id,
                reg.server_version or "?",
                self.interval,
            )
        elif kind == "job":
            if not self.registered:
                log.warning("job %s arrived before Registered", msg.job.job_id)
            log.info("job %s received (%d bytes)", msg.job.job_id, len(msg.job.artifact.data))
            self.jobs.put(msg.job)
        elif kind == "cancel":
            job_id = msg.cancel.job_id
            with self.lock:
                self.cancelled.add(job_id)
                if self.current_job == job_id and self.current_cancel is not None:
                    self.current_cancel.set()
            log.info("job %s cancelled by server", job_id)

    def worker(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            cancel = threading.Event()
            with self.lock:
                if self.done.is_set():
                    return
                self.current_job, self.current_cancel = job.job_id, cancel
                if job.job_id in self.cancelled:
                    cancel.set()
            if cancel.is_set():
                reply = agent_pb2.AgentMessage(
                    failure=agent_pb2.JobFailure(
                        job_id=job.job_id,
                        kind=common_pb2.FAILURE_KIND_UNSPECIFIED,
                        detail=CANCELLED_DETAIL,
                    )
                )
            else:
                # The lock spans sessions: a job abandoned by a dropped stream finishes its current
                # run before the next session's job starts timing, so runs never overlap.
                with self.conn.measure_lock:
                    started = time.monotonic()
                    reply = self.conn.runner(job, cancel, self.conn.worker_options)
                seconds = time.monotonic() - started
                _log_reply(reply, seconds)
                self.conn.metrics.observe_job(reply, seconds)
            with self.lock:
                self.current_job, self.current_cancel = "", None
            self.send(reply)

    def ticker(self) -> None:
        deadline = time.monotonic() + self.conn.register_timeout
        next_beat = None
        while not self.done.wait(_TICK_S):
            if self.conn.stop_event.is_set():
                self.call.cancel()
                return
            now = time.monotonic()
            if not self.registered:
                if now > deadline:
                    log.warning("no Registered within %.0fs", self.conn.register_timeout)
                    self.register_timed_out = True
                    self.call.cancel()
                    return
                continue
            if next_beat is None:
                next_beat = now + self.interval
            elif now >= next_beat:
                busy = self.current_job
                # No vcgencmd fork while a job is being timed.
                env = read_env(query_vcgencmd=not busy)
                self.conn.metrics.set_cpu_temp(env.cpu_temp_celsius)
                self.send(
                    agent_pb2.AgentMessage(heartbeat=agent_pb2.Heartbeat(busy_job_id=busy, env=env))
                )
                next_beat = now + self.interval

    def close(self) -> None:
        self.conn.metrics.set_connected(False)
        with self.lock:
            self.done.set()
            if self.current_cancel is not None:
                self.current_cancel.set()  # the server re-queues it; stop timing promptly
        self.out_q.put(None)
        self.jobs.put(None)
        if self.call is not None:
            self.call.cancel()


def _log_reply(reply: agent_pb2.AgentMessage, seconds: float) -> None:
    if reply.HasField("result"):
        res = reply.result
        log.info(
            "job %s done in %.1fs: n=%d median %.3f ms",
            res.job_id,
            seconds,
            res.stats.n,
            res.stats.median_ms,
        )
    else:
        fail = reply.failure
        log.warning(
            "job %s failed (%s): %s",
            fail.job_id,
            common_pb2.FailureKind.Name(fail.kind),
            fail.detail,
        )
