"""ScoringService: validate a candidate, start its latency jobs, compute its proxies, combine.

Handlers are coroutines on the server's event loop: checks and store reads run on short-lived
threads, proxies and exports on the compute plane, and waiting (for a worker, for a board) holds
no thread. A call that ends early (cancelled, deadline passed) cancels what it was waiting for.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

import edgescore
from edgescore.server import heap
from edgescore.server.compute.plane import Caller, ComputePlane
from edgescore.server.compute.units import ArchRef
from edgescore.server.errors import InvalidArgument, shown
from edgescore.server.fleet.latency import LatencyService
from edgescore.server.fleet.measurement import Target
from edgescore.server.metrics import Metrics
from edgescore.server.proxies import datasets, registry
from edgescore.server.proxies.base import Composite
from edgescore.server.proxies.settings import resolve_settings
from edgescore.server.scoring import composite, request_objective
from edgescore.server.scoring.label_sets import LabelSets
from edgescore.server.scoring.percentiles import Populations
from edgescore.server.scoring.proxy_cache import ProxyCache
from edgescore.server.scoring.proxy_values import ProxyValues
from edgescore.server.scoring.studies import Studies
from edgescore.server.service.convert import (
    composite_info_pb,
    override_from_pb,
    proxy_info_pb,
    served_result_pb,
)
from edgescore.server.service.rpc import client_of, item_status, unary
from edgescore.server.spaces import registry as spaces
from edgescore.server.spaces.base import ParsedArch, SearchSpace
from edgescore.server.spaces.limits import Limits, SizeCheck
from edgescore.v1 import common_pb2, scoring_pb2, scoring_pb2_grpc

log = logging.getLogger(__name__)

MAX_PROXIES_PER_REQUEST = 64
MAX_DEVICES_PER_REQUEST = 16
# A day: longer waits are a client bug, and a huge value overflows the wait.
MAX_LATENCY_TIMEOUT_S = 86_400.0


@dataclass(frozen=True)
class _Checked:
    """A request that passed every check, ready to be worked on."""

    space: SearchSpace
    arch: ParsedArch
    ref: ArchRef
    calls: list            # (name, override, resolved settings) per requested proxy
    targets: list[Target]
    timeout: float
    registered: tuple      # registered datasets the calls use


class ScoringServicer(scoring_pb2_grpc.ScoringServiceServicer):
    def __init__(self, latency: LatencyService, metrics: Metrics, plane: ComputePlane,
                 cache: ProxyCache, populations: Populations | None = None,
                 limits: Limits | None = None, stream_window: int = 32,
                 device: str = "cpu", label_sets: LabelSets | None = None) -> None:
        self._latency = latency
        self._sizes = SizeCheck(limits or Limits())
        self._metrics = metrics
        self._values = ProxyValues(plane, cache, metrics, device, populations, label_sets)
        self._studies = Studies()
        self._populations = populations
        self._stream_window = stream_window

    # -- one candidate ----------------------------------------------------------------------

    async def score(self, request: scoring_pb2.ScoreRequest, caller: Caller,
                    stream_study: str = "") -> scoring_pb2.ScoreResult:
        """Score one candidate; raises ServerError for request-level problems. `stream_study`:
        the Pareto study of the ScoreStream the request came in (when it names none)."""
        start = time.perf_counter()
        checked = await asyncio.to_thread(self._check_then_release, request)
        arch = checked.arch
        deadline = time.monotonic() + checked.timeout
        use_store = not request.no_cache
        # Latency first, so boards measure while the proxies compute.
        latencies = [asyncio.create_task(self._latency.measure(
            arch, checked.ref, target, checked.timeout, deadline, caller,
            allow_predicted=request.allow_predicted, use_store=use_store,
            priority=request.priority)) for target in checked.targets]
        try:
            proxies = await self._values.results(arch, checked.ref, checked.calls,
                                                 checked.registered, use_store, caller)
            measured = [await task for task in latencies]
        finally:
            for task in latencies:
                task.cancel()
        result = scoring_pb2.ScoreResult(
            request_id=request.request_id or uuid.uuid4().hex, space=arch.space,
            canonical_arch=arch.canonical, arch_hash=arch.arch_hash,
            server_version=edgescore.__version__)
        result.proxies.extend(served_result_pb(p) for p in proxies)
        for latency in measured:
            outcome = "ok" if latency.status.code == 0 else "error"
            self._metrics.measurements.labels(latency.device_class, outcome).inc()
            result.latencies.append(latency)
        if request.objective.WhichOneof("kind"):
            combined = await asyncio.to_thread(
                request_objective.evaluate, request, result, self._studies, stream_study, arch=arch,
                settings={name: settings for name, _, settings in checked.calls},
                populations=self._populations)
            if combined is not None:
                result.objective.CopyFrom(combined)
        result.seconds = time.perf_counter() - start
        return result

    def _check_then_release(self, request: scoring_pb2.ScoreRequest) -> _Checked:
        """`_check`, then what checking an upload left behind (copies of the model made by the
        parser, the checker and shape inference) given back to the system (`heap`)."""
        try:
            return self._check(request)
        finally:
            if request.arch.WhichOneof("spec") == "onnx":
                heap.after_upload(request.arch.onnx.ByteSize())

    def _check(self, request: scoring_pb2.ScoreRequest) -> _Checked:
        """Every request-level check, before any work (runs on a thread: ONNX parsing and size
        checks take milliseconds to seconds)."""
        which = request.arch.WhichOneof("spec")
        if which == "onnx":
            self._sizes.check_upload(request.arch.onnx)
        space, arch = spaces.parse_arch(which, getattr(request.arch, which) if which else None,
                                        request.arch.num_classes, request.arch.input_resolution)
        spec = spaces.spec_value(getattr(request.arch, which))  # as the workers parse it
        self._sizes.check(space, arch)
        request_objective.validate(request)
        calls, registered = self._proxy_calls(request, arch)
        targets = self._latency_targets(request, arch)
        timeout = request.latency_timeout_seconds or self._latency.default_timeout
        cap = max(MAX_LATENCY_TIMEOUT_S, self._latency.default_timeout)
        if not 0 <= timeout <= cap:  # NaN fails this too
            raise InvalidArgument("latency_timeout_seconds", f"{timeout} is not within 0.."
                                  f"{cap:.0f} s (0 means the server default)")
        ref = ArchRef(arch.space, spec, request.arch.num_classes, request.arch.input_resolution)
        return _Checked(space, arch, ref, calls, targets, timeout, registered)

    def _proxy_calls(self, request: scoring_pb2.ScoreRequest, arch: ParsedArch
                     ) -> tuple[list, tuple]:
        """(name, override, resolved settings) per requested proxy, validated, and the
        registered datasets they use."""
        if len(request.proxies) > MAX_PROXIES_PER_REQUEST:
            raise InvalidArgument("proxies", f"{len(request.proxies)} proxies requested; "
                                             f"at most {MAX_PROXIES_PER_REQUEST}")
        calls, seen, registered = [], set(), {}
        for i, p in enumerate(request.proxies):
            if not p.name:
                raise InvalidArgument(f"proxies[{i}].name", "is empty")
            if p.name in seen:
                raise InvalidArgument(f"proxies[{i}].name", f"{shown(p.name)} is requested twice")
            seen.add(p.name)
            override = override_from_pb(p.settings, request.proxy_defaults)
            # Validate now: a bad setting must fail the request before latency jobs are queued.
            field = f"proxies[{p.name}].settings"
            proxy = registry.get(p.name)  # NotFound for unknown names, before work
            if isinstance(proxy, Composite):
                settings = composite.resolve(proxy, override, field)
                checked = [resolved for _, _, resolved in settings.members]
            else:
                settings = resolve_settings(proxy, override, field)
                checked = [settings]
            for resolved in checked:
                if resolved.data_kind == "registered":
                    # An unknown id is NOT_FOUND for the request, not a per-proxy failure later.
                    entry = datasets.usable(resolved.dataset_id, resolved.batch_size,
                                            arch.input_shape[0], arch.num_classes, field)
                    registered[entry.dataset_id] = entry
            calls.append((p.name, override, settings))
        return calls, tuple(registered.values())

    def _latency_targets(self, request: scoring_pb2.ScoreRequest, arch: ParsedArch
                         ) -> list[Target]:
        if len(request.devices) > MAX_DEVICES_PER_REQUEST:
            raise InvalidArgument("devices", f"at most {MAX_DEVICES_PER_REQUEST} device targets")
        return [self._latency.target(d, arch, f"devices[{i}]", request.allow_predicted)
                for i, d in enumerate(request.devices)]

    # -- RPCs -------------------------------------------------------------------------------

    @unary
    async def Score(self, request: scoring_pb2.ScoreRequest,
                    context: grpc.aio.ServicerContext) -> scoring_pb2.ScoreResult:
        return await self.score(request, Caller(client_of(context)))

    async def ScoreStream(self, request_iterator: AsyncIterator[scoring_pb2.ScoreRequest],
                          context: grpc.aio.ServicerContext
                          ) -> AsyncIterator[scoring_pb2.ScoreStreamItem]:
        """Items are read while fewer than `stream_window` are in progress (past that, HTTP/2
        flow control holds the client back), scored concurrently, and sent as they finish."""
        # A lane of its own: the stream's items take turns with the client's other calls, and
        # a full compute queue holds the stream back instead of failing its items.
        caller = Caller(client_of(context), f"stream-{uuid.uuid4().hex}", wait_for_room=True)
        study = caller.lane  # a Pareto objective without a study ranks in this stream
        window = asyncio.Semaphore(self._stream_window)
        finished: asyncio.Queue = asyncio.Queue()
        working: set[asyncio.Task] = set()
        read = {"count": 0, "done": False}

        async def one(req: scoring_pb2.ScoreRequest) -> None:
            try:
                item = scoring_pb2.ScoreStreamItem(
                    request_id=req.request_id, result=await self.score(req, caller, study))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - per-item error boundary
                code, message = item_status(exc, f"ScoreStream item {req.request_id}")
                item = scoring_pb2.ScoreStreamItem(
                    request_id=req.request_id,
                    error=common_pb2.ItemStatus(code=code.value[0], message=message))
            finished.put_nowait(item)

        async def reader() -> None:
            try:
                async for req in request_iterator:
                    await window.acquire()
                    if not req.request_id:
                        req.request_id = str(read["count"])
                    read["count"] += 1
                    task = asyncio.create_task(one(req))
                    working.add(task)
                    task.add_done_callback(working.discard)
                    task.add_done_callback(lambda _t: window.release())
            finally:
                read["done"] = True
                finished.put_nowait(None)

        reading = asyncio.create_task(reader())
        sent = 0
        try:
            while True:
                item = await finished.get()
                if item is not None:
                    sent += 1
                    yield item
                if read["done"] and sent == read["count"]:
                    break
            await reading  # the client's own stream error, if any, ends the call here
        finally:
            reading.cancel()
            for task in list(working):
                task.cancel()

    @unary
    async def ListProxies(self, request: scoring_pb2.ListProxiesRequest,
                          context: grpc.aio.ServicerContext) -> scoring_pb2.ListProxiesResponse:
        response = scoring_pb2.ListProxiesResponse()
        response.proxies.extend(proxy_info_pb(p) for p in registry.all_proxies())
        response.proxies.extend(composite_info_pb(c) for c in registry.all_composites())
        return response

    @unary
    async def ListSearchSpaces(self, request: scoring_pb2.ListSearchSpacesRequest,
                               context: grpc.aio.ServicerContext
                               ) -> scoring_pb2.ListSearchSpacesResponse:
        response = scoring_pb2.ListSearchSpacesResponse()
        for space in spaces.SPACES.values():
            response.spaces.append(scoring_pb2.SearchSpaceInfo(
                name=space.name, description=space.description, example=space.example,
                fields=dict(space.fields), default_num_classes=space.default_num_classes,
                default_input_resolution=space.default_input_resolution, available=True))
        for name, description in spaces.RESERVED.items():
            response.spaces.append(scoring_pb2.SearchSpaceInfo(
                name=name, description=description, available=False))
        return response

    @unary
    async def RegisterDataset(self, request: scoring_pb2.RegisterDatasetRequest,
                              context: grpc.aio.ServicerContext
                              ) -> scoring_pb2.RegisterDatasetResponse:
        dataset_id = await asyncio.to_thread(datasets.STORE.register, request.name,
                                             request.images, list(request.shape),
                                             list(request.labels))
        log.info("registered dataset %s (%r, shape %s, %d labels)", dataset_id[:12],
                 request.name, list(request.shape), len(request.labels))
        return scoring_pb2.RegisterDatasetResponse(dataset_id=dataset_id)
