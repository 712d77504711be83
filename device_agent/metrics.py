"""The agent's own Prometheus metrics, in a registry of its own (tests run agents side by side).

Jobs by outcome, a job duration histogram, the last CPU temperature, throttled runs, whether the
agent is registered with its server, and an info series carrying the device class and version
(join on it to group the others by class in PromQL). README.md ("Observability") lists them.
"""

from __future__ import annotations

import math
from http.server import HTTPServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

from edgescore.v1 import agent_pb2, common_pb2

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


class AgentMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Counter("edgescore_agent_jobs", "Jobs finished by this agent, by outcome.",
                            ["outcome"], registry=self.registry)
        self.job_seconds = Histogram("edgescore_agent_job_duration_seconds",
                                     "Wall time of a job on this agent.", buckets=BUCKETS,
                                     registry=self.registry)
        self.cpu_temp = Gauge("edgescore_agent_cpu_temperature_celsius",
                              "Last CPU temperature read (NaN: no sensor).",
                              registry=self.registry)
        self.cpu_temp.set(math.nan)
        self.throttled_runs = Counter("edgescore_agent_throttled_runs",
                                      "Measurements flagged throttled.", registry=self.registry)
        self.connected = Gauge("edgescore_agent_connected", "1 while registered with the server.",
                               registry=self.registry)
        self.info = Gauge("edgescore_agent_info", "The agent's device class and version.",
                          ["device_class", "version"], registry=self.registry)
        self._server: HTTPServer | None = None

    def observe_job(self, reply: agent_pb2.AgentMessage, seconds: float) -> None:
        self.jobs.labels(job_outcome(reply)).inc()
        self.job_seconds.observe(seconds)
        if reply.HasField("result"):
            if reply.result.throttled:
                self.throttled_runs.inc()
            self.cpu_temp.set(reply.result.env_after.cpu_temp_celsius)

    def set_info(self, device_class: str, version: str) -> None:
        self.info.clear()  # one series: the agent's current class and version
        self.info.labels(device_class, version).set(1)

    def set_cpu_temp(self, celsius: float) -> None:
        self.cpu_temp.set(celsius)

    def set_connected(self, connected: bool) -> None:
        self.connected.set(int(connected))

    def render(self) -> str:
        """The exposition text a scrape without an Accept header gets (format 0.0.4)."""
        return generate_latest(self.registry).decode()

    def serve(self, port: int, address: str = "0.0.0.0") -> int:
        """Serve /metrics in a daemon thread; returns the bound port (port 0 picks one)."""
        self._server, _thread = start_http_server(port, addr=address, registry=self.registry)
        return self._server.server_port

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
