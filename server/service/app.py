"""Assemble the server: the asyncio gRPC front (servicers, interceptors, health, reflection,
metrics), the compute plane behind it, the fleet and the store."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf.json_format import MessageToDict
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from edgescore.server.compute.plane import Backend, Caller, ComputePlane
from edgescore.server.config import ServerConfig
from edgescore.server.fleet.exports import Exports
from edgescore.server.fleet.fleet import Fleet
from edgescore.server.fleet.jobs import JobBoard
from edgescore.server.fleet.latency import LatencyService
from edgescore.server.fleet.local_jobs import LocalJobs
from edgescore.server.fleet.shared_jobs import SharedJobs
from edgescore.server.metrics import Metrics
from edgescore.server.proxies import datasets
from edgescore.server.scoring.label_sets import LabelSets
from edgescore.server.scoring.percentiles import Populations
from edgescore.server.scoring.predictor import PredictorBank
from edgescore.server.scoring.proxy_cache import ProxyCache
from edgescore.server.service.agents import AgentServicer
from edgescore.server.service.auth import TokenInterceptor
from edgescore.server.service.decoding import DecodingInterceptor
from edgescore.server.service.fleet_service import FleetServicer
from edgescore.server.service.interceptors import ObservabilityInterceptor
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
# Reference-population members computed at once (each waits on the compute plane in a thread),
# as a client of their own: they take turns with the requests.
POPULATION_PARALLEL = 8
POPULATIONS = Caller("populations", wait_for_room=True)


@dataclass
class ServerApp:
    server: grpc.aio.Server
    port: int
    fleet: Fleet
    metrics: Metrics
    health: health.aio.HealthServicer
    plane: ComputePlane
    latency: LatencyService
    store: Store
    background: list[asyncio.Task]

    async def stop(self, grace: float | None = None) -> None:
        """Drain: report NOT_SERVING, let in-flight RPCs finish within `grace`, then close.
        Requests waiting on a latency job get UNAVAILABLE at once (the job record stays queued
        for the next process), and agents are let go, so draining waits only for computations."""
        await self.health.enter_graceful_shutdown()
        self.fleet.close()
        await self.server.stop(grace)
        for task in self.background:
            task.cancel()
        await self.latency.jobs.close()
        await self.plane.close()
        await asyncio.to_thread(self.store.close)


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


def _backend(config: ServerConfig, metrics: Metrics) -> Backend:
    if config.compute == "ray":
        from edgescore.server.compute.ray_backend import RayBackend

        return RayBackend(config.ray_address, workers=config.compute_workers,
                          device=config.device, per_gpu=config.workers_per_gpu)
    from edgescore.server.compute.local import LocalBackend

    backend = LocalBackend(config.compute_workers, config.device, config.workers_per_gpu,
                           log_level=config.log_level, on_restart=metrics.worker_restarted)
    cap = config.worker_max_memory_mb * 2**20
    if not cap:  # 80 % of the memory this server may use, shared among the workers
        cap = int(0.8 * _usable_memory() / backend.size)
    backend.max_memory_bytes = cap
    return backend


def _usable_memory() -> int:
    """The machine's memory, or its container's limit (cgroup v2 or v1) when that is lower."""
    usable = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text.isdigit():
            usable = min(usable, int(text))
    return usable


def _jobs(config: ServerConfig, fleet: Fleet, store: Store, metrics: Metrics) -> JobBoard:
    """On PostgreSQL the latency job queue is the database's: replicas share it."""
    if store.kind == "postgresql":
        return SharedJobs(fleet, config.db, config.replica_lease_seconds,
                          on_job_done=metrics.observe_job)
    return LocalJobs(fleet, store, on_job_done=metrics.observe_job)


async def create_server(address: str = "127.0.0.1:0", config: ServerConfig | None = None
                        ) -> ServerApp:
    """Build and start a server bound to `address` (port 0 picks a free one)."""
    config = config or ServerConfig(address=address)
    metrics = Metrics()
    datasets.STORE.configure(config.dataset_max_bytes, config.dataset_store_bytes)
    fleet = Fleet(config.heartbeat_interval, config.missed_heartbeats)
    metrics.watch_fleet(fleet.snapshot)
    store = await asyncio.to_thread(open_store, config.db or None)
    log.info("results store: %s %s (schema %d)", store.kind, store.location, store.schema_version())

    plane = ComputePlane(_backend(config, metrics), capacity=config.max_queued,
                         per_client=config.max_queued_per_client,
                         max_seconds=config.max_compute_seconds, on_unit=metrics.observe_unit)
    metrics.watch_compute(plane.snapshot)
    exports = Exports(plane.run, on_export=lambda fmt, outcome: metrics.exports.labels(
        fmt, outcome).inc())
    latency = LatencyService(fleet, exports, config.latency_timeout, store=store,
                             on_lookup=lambda hit: metrics.cache.labels(
                                 "measurement", "hit" if hit else "miss").inc(),
                             predictors=PredictorBank(), jobs=_jobs(config, fleet, store, metrics))

    options = [*MESSAGE_SIZE_OPTIONS,
               ("grpc.keepalive_permit_without_calls", 1),
               ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
               ("grpc.http2.max_pings_without_data", 0)]
    server = grpc.aio.server(interceptors=[ObservabilityInterceptor(metrics),
                                           *([TokenInterceptor(config.api_token)]
                                             if config.api_token else []),
                                           DecodingInterceptor()], options=options)
    cache = ProxyCache(store, config.device)
    populations = Populations(
        store, cache, config.device, config.population_size, parallel=POPULATION_PARALLEL,
        run=lambda unit, emit: plane.run_blocking(unit, POPULATIONS, emit))
    label_sets = (LabelSets.from_csv(Path(config.label_set), populations)
                  if config.label_set else None)
    scoring = ScoringServicer(latency, metrics, plane, cache, populations, _limits(config),
                              config.stream_window, config.device, label_sets)
    scoring_pb2_grpc.add_ScoringServiceServicer_to_server(scoring, server)
    fleet_pb2_grpc.add_FleetServiceServicer_to_server(FleetServicer(fleet, store), server)
    agent_pb2_grpc.add_AgentServiceServicer_to_server(
        AgentServicer(fleet, config.fleet_token or None, on_register=_agents_seen(store)), server)

    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server)

    credentials = server_credentials(config)
    port = (server.add_secure_port(address, credentials) if credentials is not None
            else server.add_insecure_port(address))
    if port == 0:
        raise RuntimeError(f"could not bind {address}")
    await server.start()
    plane.start()
    latency.jobs.start()
    # Jobs a previous process left unfinished: their exports wait for the compute plane, and
    # the jobs in their queues until an agent of the class connects.
    resume = asyncio.create_task(_resume(latency))
    return ServerApp(server, port, fleet, metrics, health_servicer, plane, latency, store,
                     [resume])


async def _resume(latency: LatencyService) -> None:
    try:
        log.info("resumed %d unfinished job(s)", await latency.resume_jobs())
    except Exception:  # noqa: BLE001 - serving goes on; the records stay for the next start
        log.warning("could not resume unfinished jobs", exc_info=True)
