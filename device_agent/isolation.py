"""Each measurement runs in a child process that the agent can kill, under a wall-clock watchdog.

The timing loop can only stop between runs, and some uploads never get there: one run of a graph
with a `Loop` of 10**12 iterations, or a warm-up of 2**32 - 1 runs. Run in the agent itself, such
a job held the board at 100 % CPU and its device class blocked for every user. So ProcessRunner
sends each job to a child ("spawn", not fork: the agent has gRPC threads) and waits for at most
the job's limit (limits.job_limit). The child stops by itself between runs at that limit (and stays
warm); a child that gives no answer STOP_GRACE_S later is killed (SIGTERM, then SIGKILL) and the
job fails with TIMEOUT. A child that dies on its own (segfault, OOM kill) fails the job with
RUNTIME_ERROR naming the signal; a cancel kills it at once. A new child is started right after a
kill, so the next job finds the runtimes imported (boards take seconds to import onnxruntime).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.connection import Connection, wait

from edgescore.device_agent.limits import job_limit, settings_refusal
from edgescore.device_agent.worker import (
    CANCELLED_DETAIL,
    WorkerOptions,
    check_artifact,
    failure,
    measure_function,
    measure_job,
)
from edgescore.v1 import agent_pb2, common_pb2

log = logging.getLogger(__name__)

# The contract has no failure kind of its own for settings over the agent's caps; the nearest is
# "this agent cannot run the job as asked", which the server answers FAILED_PRECONDITION.
SETTINGS_REFUSED = common_pb2.UNSUPPORTED_FORMAT
START_TIMEOUT_S = 120.0  # a Pi 3 imports numpy + onnxruntime + LiteRT in tens of seconds
STOP_GRACE_S = 1.0       # past the limit: time for the child's own between-runs stop to answer
TERM_GRACE_S = 2.0       # SIGTERM, then SIGKILL
_POLL_S = 0.05           # how often a cancel is noticed while waiting
_PARENT_CHECK_S = 1.0
READY = b"ready"

# What a job's child answered or did while the agent waited for it.
_REPLY, _DIED, _CANCELLED, _EXPIRED = "reply", "died", "cancelled", "expired"
_SIGNAL_HINTS = {
    "SIGKILL": "; the kernel's out-of-memory killer sends it when memory runs out",
    "SIGSEGV": "; the runtime crashed",
    "SIGBUS": "; the runtime crashed",
    "SIGABRT": "; the runtime aborted",
    "SIGILL": "; the runtime used an instruction this CPU lacks",
}


def exit_description(code: int | None) -> str:
    """How a process ended, from its multiprocessing exit code (-N: killed by signal N)."""
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "an unknown signal"
        return f"was killed by {name} (signal {-code}){_SIGNAL_HINTS.get(name, '')}"
    return f"exited with code {code}"


class _Child:
    """One measurement process and the agent's end of its pipe."""

    def __init__(self, ctx: multiprocessing.context.BaseContext) -> None:
        parent_end, child_end = ctx.Pipe()
        self.proc = ctx.Process(target=child_main, args=(child_end, os.getpid()),
                                name="edgescore-measure", daemon=True)
        self.proc.start()
        child_end.close()  # only the child holds it now, so its death reads as EOF here
        self.conn: Connection = parent_end
        self.pid: int = self.proc.pid
        self.ready = False
        self.exitcode: int | None = None
        self._stop_lock = threading.Lock()  # the worker and close() may both stop it
        log.debug("measurement process %d started", self.pid)

    def wait(self, cancel: threading.Event, deadline: float) -> tuple[str, bytes]:
        """The child's next message, or why there is none: it died, a cancel, the deadline."""
        while True:
            left = max(0.0, min(_POLL_S, deadline - time.monotonic()))
            try:
                ready = wait([self.conn, self.proc.sentinel], timeout=left)
            except (OSError, ValueError):  # close() stopped it meanwhile (agent shutting down)
                return _DIED, b""
            if self.conn in ready:
                try:
                    return _REPLY, self.conn.recv_bytes()
                except (EOFError, OSError):
                    return _DIED, b""
            if self.proc.sentinel in ready:
                return _DIED, b""
            if cancel.is_set():
                return _CANCELLED, b""
            if time.monotonic() >= deadline:
                return _EXPIRED, b""

    def stop(self, grace: float = 0.0) -> None:
        """Make sure it is gone: `grace` seconds to exit by itself (one that is dying: so that
        its own exit code is read), then SIGTERM, then SIGKILL; reap it."""
        with self._stop_lock:
            proc = self.proc
            proc.join(grace)
            if proc.exitcode is None:
                proc.terminate()
                proc.join(TERM_GRACE_S)
            if proc.exitcode is None:
                proc.kill()
                proc.join(TERM_GRACE_S)
            if proc.exitcode is None:  # uninterruptible I/O: it goes when the kernel lets it
                log.warning("measurement process %d did not exit after SIGKILL", self.pid)
            self.exitcode = proc.exitcode
            self.conn.close()


class _NoChild(Exception):
    """No ready child for this job: `reply` says why."""

    def __init__(self, reply: agent_pb2.AgentMessage) -> None:
        super().__init__(reply.failure.detail)
        self.reply = reply


class ProcessRunner:
    """Runs jobs in a child process under a watchdog; called like worker.run_job.

    One job at a time (the agent serialises them with AgentConnection.measure_lock). Never
    raises. close() stops the child; a job after it is answered as cancelled until warm_up().
    """

    def __init__(self, start_timeout: float = START_TIMEOUT_S) -> None:
        self.start_timeout = start_timeout
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._child: _Child | None = None
        self._closed = False
        self.spawn_error = ""

    @property
    def child_pid(self) -> int | None:
        """Pid of the current measurement process, if one is running or starting."""
        child = self._child
        return child.pid if child is not None else None

    def warm_up(self) -> None:
        """Start the child now: it imports the runtimes while the agent connects."""
        with self._lock:
            self._closed = False
            if self._child is None:
                self._child = self._spawn()

    def _spawn(self) -> _Child | None:
        try:
            return _Child(self._ctx)
        except Exception as exc:  # noqa: BLE001 - e.g. no memory to start a process
            self.spawn_error = f"could not start the measurement process: {exc}"
            log.warning("%s", self.spawn_error)
            return None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            child, self._child = self._child, None
        if child is not None:
            child.stop()

    def __call__(
        self,
        job: agent_pb2.Job,
        cancel: threading.Event | None = None,
        options: WorkerOptions | None = None,
    ) -> agent_pb2.AgentMessage:
        opts = options or WorkerOptions()
        cancel = cancel or threading.Event()
        corrupt = check_artifact(job)  # in the agent: a corrupt artifact never reaches a child
        if corrupt is not None:
            return corrupt
        refusal = settings_refusal(job.settings, opts.max_threads, opts.max_job_seconds)
        if refusal is not None:  # before any runtime sees them: the board stays the agent's
            return failure(job.job_id, SETTINGS_REFUSED, refusal)
        limit = job_limit(job, opts.cooldown_max_wait, opts.max_job_seconds)
        try:
            child = self._ready_child(job.job_id, cancel)
        except _NoChild as exc:
            return exc.reply
        try:
            child.conn.send((limit.seconds, limit.describe(), opts.cooldown_max_wait,
                             opts.cooldown_poll))
            child.conn.send_bytes(job.SerializeToString())
        except OSError:  # BrokenPipeError: it died between jobs
            event, data = _DIED, b""
        else:
            # Counted from here, as the child counts from when it has the job: sending a large
            # artifact takes a while on a board.
            deadline = time.monotonic() + limit.seconds + STOP_GRACE_S
            event, data = child.wait(cancel, deadline)
        detail = ""
        if event == _REPLY:
            try:
                return agent_pb2.AgentMessage.FromString(data)
            except Exception as exc:  # noqa: BLE001 - never expected; the child is suspect
                event, detail = _DIED, f"sent an unreadable reply ({exc})"
        self._discard(child, restart=True, grace=TERM_GRACE_S if event == _DIED else 0.0)
        if event == _CANCELLED:
            return failure(job.job_id, common_pb2.FAILURE_KIND_UNSPECIFIED, CANCELLED_DETAIL)
        if event == _EXPIRED:
            return failure(job.job_id, common_pb2.TIMEOUT,
                           f"{limit.describe()}; the measurement process (pid {child.pid}) "
                           "did not stop and was killed")
        detail = detail or exit_description(child.exitcode)
        return failure(job.job_id, common_pb2.RUNTIME_ERROR,
                       f"the measurement process (pid {child.pid}) {detail} during the job")

    def _ready_child(self, job_id: str, cancel: threading.Event) -> _Child:
        """The warm child, started (and waited for) if need be; _NoChild when there is none."""
        with self._lock:
            if self._closed or cancel.is_set():
                raise _NoChild(failure(job_id, common_pb2.FAILURE_KIND_UNSPECIFIED,
                                       CANCELLED_DETAIL))
            if self._child is None:
                self._child = self._spawn()
            child = self._child
        if child is None:
            raise _NoChild(failure(job_id, common_pb2.RUNTIME_ERROR, self.spawn_error))
        if child.ready:
            return child
        event, data = child.wait(cancel, time.monotonic() + self.start_timeout)
        if event == _REPLY and data == READY:
            child.ready = True
            return child
        if event == _CANCELLED:  # it goes on starting, for the next job
            raise _NoChild(failure(job_id, common_pb2.FAILURE_KIND_UNSPECIFIED,
                                   CANCELLED_DETAIL))
        # No restart: a child that cannot start would only fail again at once.
        self._discard(child, restart=False, grace=TERM_GRACE_S if event == _DIED else 0.0)
        if event == _EXPIRED:
            why = f"did not start within {self.start_timeout:g} s"
        elif event == _REPLY:
            why = f"sent {data[:40]!r} instead of {READY!r}"
        else:
            why = exit_description(child.exitcode) + " while starting"
        raise _NoChild(failure(job_id, common_pb2.RUNTIME_ERROR,
                               f"the measurement process (pid {child.pid}) {why}"))

    def _discard(self, child: _Child, restart: bool, grace: float = 0.0) -> None:
        child.stop(grace)
        with self._lock:
            if self._child is child:
                self._child = self._spawn() if restart and not self._closed else None


# --- the child's side -------------------------------------------------------------------------


def child_main(conn: Connection, parent_pid: int) -> None:
    """Entry point of the measurement process: import the runtimes, then one job at a time."""
    # Ctrl-C reaches the whole process group; the agent decides when its child stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), name="parent-watch",
                     daemon=True).start()
    _import_runtimes()
    try:
        conn.send_bytes(READY)
        while True:
            seconds, text, cooldown_max_wait, cooldown_poll = conn.recv()
            job = agent_pb2.Job.FromString(conn.recv_bytes())
            options = WorkerOptions(cooldown_max_wait, cooldown_poll)
            reply = measure_job(job, None, options, seconds, text)
            conn.send_bytes(reply.SerializeToString())
    except (EOFError, OSError):  # the agent closed its end
        return


def _import_runtimes() -> None:
    """Import onnxruntime and LiteRT now rather than in the first job's time limit."""
    for fmt in (common_pb2.ONNX, common_pb2.TFLITE):
        try:
            measure_function(fmt)
            if fmt == common_pb2.TFLITE:
                from edgescore.device_agent.tflite_runner import load_interpreter_module

                load_interpreter_module()  # the interpreter module itself is imported lazily
        except Exception:  # noqa: BLE001 - that format's jobs will say UNSUPPORTED_FORMAT
            pass


def _exit_with_parent(parent_pid: int) -> None:
    # An agent killed with SIGKILL cannot stop its child, and a hung job would spin on for ever.
    while True:
        time.sleep(_PARENT_CHECK_S)
        if os.getppid() != parent_pid:
            os._exit(1)
