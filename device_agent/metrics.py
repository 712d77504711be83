"""The agent's own Prometheus metrics, served with the stdlib (prometheus-client stays off boards).

Text exposition format 0.0.4: jobs by outcome, a job duration histogram, the last CPU temperature,
throttled runs, whether the agent is registered with its server, and an info series carrying the
device class and version (join on it to group the others by class in PromQL).
"""

from __future__ import annotations

import logging
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from edgescore.v1 import agent_pb2, common_pb2

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Job wall time (load + warm-up + timed runs + cooldown): seconds for tiny nets, minutes on a Pi.
BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


def job_outcome(reply: agent_pb2.AgentMessage) -> str:
    """Label of a job's reply: "ok", "cancelled", or the failure kind in lower case."""
    if reply.HasField("result"):
        return "ok"
    kind = reply.failure.kind
    if kind == common_pb2.FAILURE_KIND_UNSPECIFIED:
        return "cancelled"
    return common_pb2.FailureKind.Name(kind).lower()


def _label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


class AgentMetrics:
    """Thread-safe counters; render() produces the exposition text."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.jobs: dict[str, int] = {}
        self.bucket_counts = [0] * len(BUCKETS)
        self.duration_sum = 0.0
        self.duration_count = 0
        self.cpu_temp = math.nan
        self.throttled_runs = 0
        self.connected = 0
        self.info: dict[str, str] = {}
        self._server: ThreadingHTTPServer | None = None

    def observe_job(self, reply: agent_pb2.AgentMessage, seconds: float) -> None:
        outcome = job_outcome(reply)
        with self._lock:
            self.jobs[outcome] = self.jobs.get(outcome, 0) + 1
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    self.bucket_counts[i] += 1
            self.duration_sum += seconds
            self.duration_count += 1
            if reply.HasField("result"):
                self.throttled_runs += int(reply.result.throttled)
                self.cpu_temp = reply.result.env_after.cpu_temp_celsius

    def set_info(self, device_class: str, version: str) -> None:
        with self._lock:
            self.info = {"device_class": device_class, "version": version}

    def set_cpu_temp(self, celsius: float) -> None:
        with self._lock:
            self.cpu_temp = celsius

    def set_connected(self, connected: bool) -> None:
        with self._lock:
            self.connected = int(connected)

    def render(self) -> str:
        with self._lock:
            lines = [
                "# HELP edgescore_agent_jobs_total Jobs finished by this agent, by outcome.",
                "# TYPE edgescore_agent_jobs_total counter",
            ]
            for outcome in sorted(self.jobs):
                lines.append(f'edgescore_agent_jobs_total{{outcome="{outcome}"}} '
                             f"{self.jobs[outcome]}")
            lines += [
                "# HELP edgescore_agent_job_duration_seconds Wall time of a job on this agent.",
                "# TYPE edgescore_agent_job_duration_seconds histogram",
            ]
            for bound, count in zip(BUCKETS, self.bucket_counts):
                lines.append(f'edgescore_agent_job_duration_seconds_bucket{{le="{bound}"}} '
                             f"{count}")
            lines += [
                f'edgescore_agent_job_duration_seconds_bucket{{le="+Inf"}} '
                f"{self.duration_count}",
                f"edgescore_agent_job_duration_seconds_sum {_num(self.duration_sum)}",
                f"edgescore_agent_job_duration_seconds_count {self.duration_count}",
                "# HELP edgescore_agent_cpu_temperature_celsius Last CPU temperature read "
                "(NaN: no sensor).",
                "# TYPE edgescore_agent_cpu_temperature_celsius gauge",
                f"edgescore_agent_cpu_temperature_celsius {_num(self.cpu_temp)}",
                "# HELP edgescore_agent_throttled_runs_total Measurements flagged throttled.",
                "# TYPE edgescore_agent_throttled_runs_total counter",
                f"edgescore_agent_throttled_runs_total {self.throttled_runs}",
                "# HELP edgescore_agent_connected 1 while registered with the server.",
                "# TYPE edgescore_agent_connected gauge",
                f"edgescore_agent_connected {self.connected}",
            ]
            if self.info:
                labels = ",".join(f'{k}="{_label(v)}"' for k, v in sorted(self.info.items()))
                lines += [
                    "# HELP edgescore_agent_info The agent's device class and version.",
                    "# TYPE edgescore_agent_info gauge",
                    f"edgescore_agent_info{{{labels}}} 1",
                ]
        return "\n".join(lines) + "\n"

    def serve(self, port: int, address: str = "0.0.0.0") -> int:
        """Serve GET /metrics in a daemon thread; returns the bound port (port 0 picks one)."""
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.split("?", 1)[0] not in ("/metrics", "/"):
                    self.send_error(404)
                    return
                body = metrics.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # one line per scrape would drown the agent's log

        self._server = ThreadingHTTPServer((address, port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="agent-metrics",
                         daemon=True).start()
        return self._server.server_address[1]

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
