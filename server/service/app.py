"""Assemble the gRPC server: servicers, interceptors, health, reflection, metrics."""

from __future__ import annotations

import dataclasses
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
from google.protobuf.json_format import MessageToDict
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from edgescore.server.config import ServerConfig
from edgescore.server.export.artifacts import ArtifactStore
from edgescore.server.export.exporter import Exporter
from edgescore.server.fleet.fleet import Fleet
from edgescore.server.fleet.latency import LatencyService
from edgescore.server.proxies import datasets
from edgescore.server.scoring.predictor import PredictorBank
from edgescore.server.service.agents import AgentServicer
from edgescore.server.service.auth import TokenInterceptor
from edgescore.server.service.fleet_service import FleetServicer
from edgescore.server.service.interceptors import ObservabilityInterceptor
from edgescore.server.service.metrics import Metrics
from edgescore.server.service.populations import Populations
from edgescore.server.service.proxy_cache import ProxyCache
from edgescore.server.service.scoring import ScoringServicer
from edgescore.server.spaces.limits import Limits
from edgescore.server.store import Store, open_store
from edgescore.transport import MESSAGE_SIZE_OPTIONS
from edgescore.v1 import (
    agent_pb2,
    agent_pb2_grpc,
    fleet_pb2,
    fleet_pb2_grpc,
    scoring_pb2,
    scoring_pb2_grpc,
)

log = logging.getLogger(__name__)


SERVICE_NAMES = (
    scoring_pb2.DESCRIPTOR.services_by_name["ScoringService"].full_name,
    fleet_pb2.DESCRIPTOR.services_by_name["FleetService"].full_name,
    agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name,
)


@dataclass
class ServerApp:
    server: grpc.Server
    port: int
    fleet: Fleet
    metrics: Metrics
    health: health.HealthServicer
    scoring: ScoringServicer
    store: Store

    def stop(self, grace: float | None = None) -> None:
        """Drain: report NOT_SERVING, let in-flight RPCs finish within `grace`, then close."""
        self.health.enter_graceful_shutdown()
        event = self.server.stop(grace)
        self.fleet.close()
        event.wait()
        self.scoring.close()
        self.store.close()


def _exporter(metrics: Metrics) -> Exporter:
    """Every format/precision of artifact, counted in the exports metric by format and outcome."""
    return Exporter(on_export=lambda fmt, outcome: metrics.exports.labels(fmt, outcome).inc())


def _agents_seen(store: Store):
    """Keep each agent that registers (id, class, capabilities, first and last seen)."""
    def record(session) -> None:
        try:
            store.agent_seen(session.agent_id, session.device_class,
                             MessageToDict(session.capabilities, preserving_proto_field_name=True))
        except Exception:  # noqa: BLE001 - bookkeeping must not refuse an agent
            log.warning("could not record agent %s", session.agent_id, exc_info=True)
    return record


def server_credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    """TLS credentials from the config's PEM files; None = plain text (no --tls-cert)."""
    if not config.tls_cert:
        return None

    def read(path: str) -> bytes:
        with open(path, "rb") as fh:
            return fh.read()

    client_ca = read(config.tls_client_ca) if config.tls_client_ca else None
    # With a client CA, a peer without a certificate it signed fails the TLS handshake: no RPC,
    # the agent Connect stream included, ever reaches a handler.
    return grpc.ssl_server_credentials([(read(config.tls_key), read(config.tls_cert))],
                                       root_certificates=client_ca,
                                       require_client_auth=client_ca is not None)


def _limits(config: ServerConfig) -> Limits:
    return Limits(**{f.name: int(getattr(config, f.name)) for f in dataclasses.fields(Limits)})


def create_server(address: str = "127.0.0.1:0", config: ServerConfig | None = None) -> ServerApp:
    """Build and start a server bound to `address` (port 0 picks a free one)."""
    config = config or ServerConfig(address=address)
    metrics = Metrics()
    datasets.STORE.configure(config.dataset_max_bytes, config.dataset_store_bytes)
    fleet = Fleet(config.heartbeat_interval, config.missed_heartbeats)
    metrics.watch_fleet(fleet.snapshot)
    store = open_store(config.db or None)
    log.info("results store: %s %s (schema %d)", store.kind, store.location, store.schema_version())
    latency = LatencyService(fleet, ArtifactStore(), _exporter(metrics), config.latency_timeout,
                             store=store, on_lookup=lambda hit: metrics.cache.labels(
                                 "measurement", "hit" if hit else "miss").inc(),
                             predictors=PredictorBank(), on_job_done=metrics.observe_job)

    options = [*MESSAGE_SIZE_OPTIONS,
               ("grpc.keepalive_permit_without_calls", 1),
               ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
               ("grpc.http2.max_pings_without_data", 0)]
    server = grpc.server(ThreadPoolExecutor(config.workers, thread_name_prefix="grpc"),
                         interceptors=[ObservabilityInterceptor(metrics),
                                       *([TokenInterceptor(config.api_token)]
                                         if config.api_token else [])], options=options)
    cache = ProxyCache(store, config.device)
    scoring = ScoringServicer(latency, metrics, config.device, config.stream_workers, cache,
                              Populations(store, cache, config.device, config.population_size),
                              _limits(config))
    scoring_pb2_grpc.add_ScoringServiceServicer_to_server(scoring, server)
    fleet_pb2_grpc.add_FleetServiceServicer_to_server(FleetServicer(fleet, store), server)
    agent_pb2_grpc.add_AgentServiceServicer_to_server(
        AgentServicer(fleet, config.fleet_token or None, on_register=_agents_seen(store)), server)

    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", *SERVICE_NAMES):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)

    credentials = server_credentials(config)
    port = (server.add_secure_port(address, credentials) if credentials is not None
            else server.add_insecure_port(address))
    if port == 0:
        raise RuntimeError(f"could not bind {address}")
    server.start()
    # Jobs a previous process left unfinished: exports take seconds each, so not on the way to
    # serving; they wait in their queues until an agent of the class connects.
    threading.Thread(target=lambda: log.info("resumed %d unfinished job(s)", latency.resume_jobs()),
                     name="resume-jobs", daemon=True).start()
    return ServerApp(server, port, fleet, metrics, health_servicer, scoring, store)
