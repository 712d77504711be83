"""Prometheus metrics of one server instance (its own registry, so tests can run several)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


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


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.rpc_total = Counter("edgescore_rpc_requests", "RPCs handled",
                                 ["method", "code"], registry=self.registry)
        self.rpc_seconds = Histogram("edgescore_rpc_duration_seconds", "RPC handling time",
                                     ["method", "code"], registry=self.registry)
        self.proxy_seconds = Histogram(
            "edgescore_proxy_compute_seconds", "Proxy compute time", ["proxy", "space", "outcome"],
            registry=self.registry, buckets=(.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120))
        self.measurements = Counter("edgescore_measurements", "Latency jobs finished",
                                    ["device_class", "outcome"], registry=self.registry)
        self.cache = Counter("edgescore_cache_lookups", "Store lookups before computing or "
                             "measuring", ["kind", "outcome"], registry=self.registry)
        self.exports = Counter("edgescore_exports", "Artifact exports", ["format", "outcome"],
                               registry=self.registry)

    def watch_fleet(self, snapshot: Callable[[], list[dict]]) -> None:
        self.registry.register(_FleetCollector(snapshot))

    def serve(self, port: int, address: str = "0.0.0.0") -> int:
        """Start the /metrics HTTP endpoint; port 0 picks a free one. Returns the bound port."""
        server, _thread = start_http_server(port, addr=address, registry=self.registry)
        return server.server_port
