"""Prometheus metrics of one server instance (its own registry, so tests can run several).

Every name is listed in README.md ("Observability"); deploy/grafana/dashboards/edgescore.json
charts them and tests/test_observability.py checks that each series the dashboard queries exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from edgescore.v1 import common_pb2


class _FleetCollector(Collector):
    """Fleet gauges read at scrape time, so they can never drift from the fleet's state."""

    def __init__(self, snapshot: Callable[[], list[dict]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        online = GaugeMetricFamily("edgescore_agents_online", "Agents connected",
                                   labels=["device_class"])
        busy = GaugeMetricFamily("edgescore_agents_busy", "Agents running a job",
                                 labels=["device_class"])
        depth = GaugeMetricFamily("edgescore_queue_depth", "Jobs waiting for an agent",
                                  labels=["device_class"])
        for row in self._snapshot():
            online.add_metric([row["device_class"]], len(row["agents"]))
            busy.add_metric([row["device_class"]], row["busy"])
            depth.add_metric([row["device_class"]], row["queue_depth"])
        yield from (online, busy, depth)


class _ComputeCollector(Collector):
    """Compute plane gauges, read at scrape time."""

    def __init__(self, snapshot: Callable[[], dict[str, int]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        state = self._snapshot()
        for name, key, what in (
                ("edgescore_compute_queue_depth", "queued", "Units of work waiting for a worker"),
                ("edgescore_compute_running", "running", "Units of work being computed"),
                ("edgescore_compute_slots", "slots", "Units of work that can run at once")):
            gauge = GaugeMetricFamily(name, what)
            gauge.add_metric([], state[key])
            yield gauge


# A Score waits for its measurements (up to --latency-timeout, 120 s by default); an agent's
# Connect stream lasts as long as the agent stays connected.
RPC_BUCKETS = (.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
# A latency job from submission to answer: queue wait + export transfer + the agent's timed runs.
MEASUREMENT_BUCKETS = (.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # Recorded by the interceptor once the handler (or its response stream) has finished.
        self.rpc_total = Counter("edgescore_rpc_requests", "RPCs handled, by final status code",
                                 ["method", "code"], registry=self.registry)
        self.rpc_seconds = Histogram("edgescore_rpc_duration_seconds", "RPC handling time",
                                     ["method", "code"], registry=self.registry,
                                     buckets=RPC_BUCKETS)
        self.proxy_seconds = Histogram(
            "edgescore_proxy_compute_seconds", "Proxy compute time", ["proxy", "space", "outcome"],
            registry=self.registry, buckets=(.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120))
        self.measurements = Counter("edgescore_measurements", "Latency jobs finished",
                                    ["device_class", "outcome"], registry=self.registry)
        self.cache = Counter("edgescore_cache_lookups", "Store lookups before computing or "
                             "measuring", ["kind", "outcome"], registry=self.registry)
        self.exports = Counter("edgescore_exports", "Artifact exports", ["format", "outcome"],
                               registry=self.registry)
        # One observation per latency job (not per waiting request): from its submission to the
        # fleet until an agent answered it (outcome "ok"), failed it (the failure kind, lower
        # case), or it was given up ("timeout") or lost. Stored and predicted answers send no
        # job and are not observed; the agent's own edgescore_agent_job_duration_seconds is the
        # measuring part alone.
        self.measurement_seconds = Histogram(
            "edgescore_measurement_duration_seconds",
            "Latency job time from submission to the agent's answer", ["device_class", "outcome"],
            registry=self.registry, buckets=MEASUREMENT_BUCKETS)

        # The compute plane: one observation per unit of work (a candidate's proxies, or an
        # export), by outcome: ok, error, cancelled (every requester left), timeout (the time
        # cap); and worker processes replaced, by reason.
        self.compute_units = Counter("edgescore_compute_units", "Units of work finished",
                                     ["kind", "outcome"], registry=self.registry)
        self.compute_seconds = Histogram(
            "edgescore_compute_unit_duration_seconds", "Time a unit of work held a worker",
            ["kind", "outcome"], registry=self.registry,
            buckets=(.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600))
        self.compute_restarts = Counter("edgescore_compute_worker_restarts",
                                        "Compute worker processes replaced", ["reason"],
                                        registry=self.registry)

    def observe_unit(self, kind: str, outcome: str, seconds: float) -> None:
        self.compute_units.labels(kind, outcome).inc()
        self.compute_seconds.labels(kind, outcome).observe(max(0.0, seconds))

    def worker_restarted(self, reason: str) -> None:
        # The label is the kind of reason, not its text (which carries figures).
        self.compute_restarts.labels(reason.split(":")[0].split(" (")[0][:40]).inc()

    def watch_compute(self, snapshot: Callable[[], dict[str, int]]) -> None:
        self.registry.register(_ComputeCollector(snapshot))

    def observe_job(self, device_class: str, outcome: object, seconds: float) -> None:
        """A latency job ended (a fleet JobOutcome): into the measurement duration histogram."""
        if getattr(outcome, "ok", False):
            label = "ok"
        else:
            kind = getattr(outcome, "failure_kind", common_pb2.FAILURE_KIND_UNSPECIFIED)
            label = ("cancelled" if kind == common_pb2.FAILURE_KIND_UNSPECIFIED
                     else common_pb2.FailureKind.Name(kind).lower())
        self.measurement_seconds.labels(device_class, label).observe(max(0.0, seconds))

    def watch_fleet(self, snapshot: Callable[[], list[dict]]) -> None:
        self.registry.register(_FleetCollector(snapshot))

    def serve(self, port: int, address: str = "0.0.0.0") -> int:
        """Start the /metrics HTTP endpoint; port 0 picks a free one. Returns the bound port."""
        server, _thread = start_http_server(port, addr=address, registry=self.registry)
        return server.server_port
