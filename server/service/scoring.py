"""ScoringService: validate a candidate, start its latency jobs, compute its proxies, combine."""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc

import edgescore
from edgescore.server.errors import FailedPrecondition, InvalidArgument, ServerError, status_of
from edgescore.server.fleet.latency import LatencyRequest, LatencyService, resolve_measurement
from edgescore.server.proxies import datasets, engine, registry
from edgescore.server.proxies.base import SettingsOverride
from edgescore.server.service import ensemble, objective
from edgescore.server.service.convert import override_from_pb, proxy_result_pb, settings_to_pb
from edgescore.server.service.metrics import Metrics
from edgescore.server.service.populations import Populations
from edgescore.server.service.proxy_cache import ProxyCache
from edgescore.server.service.rpc import abort_with, unary
from edgescore.server.spaces import registry as spaces
from edgescore.server.spaces.base import ParsedArch
from edgescore.server.spaces.limits import Limits, SizeCheck
from edgescore.v1 import common_pb2, scoring_pb2, scoring_pb2_grpc

log = logging.getLogger(__name__)

MAX_PROXIES_PER_REQUEST = 64
MAX_DEVICES_PER_REQUEST = 16
# A day: longer waits are a client bug, and a huge value overflows the wait (OverflowError).
MAX_LATENCY_TIMEOUT_S = 86_400.0


def _call_key(name: str, settings: object) -> tuple[str, str]:
    return name, repr(settings)


class ScoringServicer(scoring_pb2_grpc.ScoringServiceServicer):
    def __init__(self, latency: LatencyService, metrics: Metrics, device: str = "cpu",
                 stream_workers: int = 2, cache: ProxyCache | None = None,
                 populations: Populations | None = None, limits: Limits | None = None) -> None:
        self._latency = latency
        self._sizes = SizeCheck(limits or Limits())
        self._metrics = metrics
        self._device = device
        self._cache = cache or ProxyCache(None, device)
        self._studies = objective.Studies()
        self._populations = populations
        self._stream_pool = ThreadPoolExecutor(stream_workers, thread_name_prefix="score-stream")

    # -- one candidate ----------------------------------------------------------------------

    def score(self, request: scoring_pb2.ScoreRequest, stream_study: str = ""
              ) -> scoring_pb2.ScoreResult:
        """Score one candidate; raises ServerError for request-level problems. `stream_study`:
        the Pareto study of the ScoreStream the request came in (when it names none)."""
        start = time.perf_counter()
        which = request.arch.WhichOneof("spec")
        if which == "onnx":
            self._sizes.check_upload(request.arch.onnx)
        space, arch = spaces.parse_arch(
            which, getattr(request.arch, which) if which else None,
            request.arch.num_classes, request.arch.input_resolution)
        self._sizes.check(space, arch)
        objective.validate(request)
        calls = self._proxy_calls(request, arch)
        targets = self._latency_targets(request, arch)

        timeout = request.latency_timeout_seconds or self._latency.default_timeout
        cap = max(MAX_LATENCY_TIMEOUT_S, self._latency.default_timeout)
        if not 0 <= timeout <= cap:  # NaN fails this too
            raise InvalidArgument("latency_timeout_seconds", f"{timeout} is not within 0.."
                                  f"{cap:.0f} s (0 means the server default)")
        deadline = time.time() + timeout
        for target in targets:  # jobs first, so boards measure while the proxies compute
            self._latency.start(arch, target, timeout, allow_predicted=request.allow_predicted,
                                use_store=not request.no_cache, priority=request.priority)

        result = scoring_pb2.ScoreResult(
            request_id=request.request_id or uuid.uuid4().hex,
            space=arch.space,
            canonical_arch=arch.canonical,
            arch_hash=arch.arch_hash,
            server_version=edgescore.__version__,
        )
        result.proxies.extend(self._proxies(space, arch, calls, use_store=not request.no_cache))
        for target in targets:
            latency = self._latency.wait(target, deadline)
            outcome = "ok" if latency.status.code == 0 else "error"
            self._metrics.measurements.labels(target.device_class, outcome).inc()
            result.latencies.append(latency)
        combined = objective.evaluate(
            request, result, self._studies, stream_study, arch=arch,
            settings={name: settings for name, _, settings in calls},
            populations=self._populations)
        if combined is not None:
            result.objective.CopyFrom(combined)
        result.seconds = time.perf_counter() - start
        return result

    def _proxies(self, space, arch: ParsedArch, calls: list, use_store: bool = True
                 ) -> list[common_pb2.ProxyResult]:
        """One result per call, in order; an ensemble's members are computed with the other
        proxies (once, where a member is also requested with the same settings)."""
        needed: dict[tuple, tuple] = {}
        for name, override, settings in calls:
            members = settings.members if name == ensemble.NAME else [(name, override, settings)]
            for member in members:
                needed.setdefault(_call_key(member[0], member[2]), member)
        done = dict(zip(needed, self._compute(space, arch, list(needed.values()), use_store)))
        return [self._ensemble_result(arch, settings, done) if name == ensemble.NAME
                else done[_call_key(name, settings)] for name, _, settings in calls]

    def _compute(self, space, arch: ParsedArch, calls: list, use_store: bool
                 ) -> list[common_pb2.ProxyResult]:
        """Stored values where the store has them (CACHED), the others computed and stored;
        use_store=False (the request's no_cache) recomputes every one."""
        cached = {}
        for i, (name, _, settings) in enumerate(calls if use_store else ()):
            hit = self._cache.lookup(arch, name, settings)
            self._metrics.cache.labels("proxy", "miss" if hit is None else "hit").inc()
            if hit is not None:
                cached[i] = hit
        computed = iter(engine.compute_proxies(
            space, arch, [(n, o) for i, (n, o, _) in enumerate(calls) if i not in cached],
            device=self._device))
        results = []
        for i in range(len(calls)):
            if i in cached:
                results.append(proxy_result_pb(cached[i], common_pb2.CACHED))
                continue
            outcome = next(computed)
            status = "ok" if outcome.error is None else "error"
            self._metrics.proxy_seconds.labels(outcome.name, arch.space, status).observe(
                outcome.seconds)
            self._cache.save(arch, outcome)
            results.append(proxy_result_pb(outcome))
        return results

    def _ensemble_result(self, arch: ParsedArch, settings: ensemble.EnsembleSettings,
                         done: dict) -> common_pb2.ProxyResult:
        members = [done[_call_key(name, resolved)] for name, _, resolved in settings.members]
        result = common_pb2.ProxyResult(
            name=ensemble.NAME, unit=ensemble.UNIT, transform=ensemble.TRANSFORM,
            provenance=common_pb2.COMPUTED,
            settings=common_pb2.ProxySettings(extra={ensemble.MEMBERS_KEY: ",".join(
                settings.names)}),
            compute_seconds=sum(m.compute_seconds for m in members
                                if m.provenance == common_pb2.COMPUTED),
            flags=sorted({f for m in members for f in m.flags}))
        failed = next((m for m in members if m.status.code != 0), None)
        try:
            if failed is not None:
                raise FailedPrecondition(f"member {failed.name} failed: {failed.status.message}")
            if self._populations is None:
                raise FailedPrecondition("this server has no reference populations")
            value, pct = self._populations.ensemble(arch, settings,
                                                    {m.name: m.value for m in members})
        except ServerError as exc:
            result.status.code = exc.code.value[0]
            result.status.message = f"{ensemble.NAME}: {exc.message}"
            return result
        result.value = value
        result.components.update(pct)
        return result

    def _proxy_calls(self, request: scoring_pb2.ScoreRequest, arch: ParsedArch) -> list:
        """(name, override, resolved settings) per requested proxy, validated."""
        if len(request.proxies) > MAX_PROXIES_PER_REQUEST:
            raise InvalidArgument("proxies", f"{len(request.proxies)} proxies requested; "
                                             f"at most {MAX_PROXIES_PER_REQUEST}")
        calls, seen = [], set()
        for i, p in enumerate(request.proxies):
            if not p.name:
                raise InvalidArgument(f"proxies[{i}].name", "is empty")
            if p.name in seen:
                raise InvalidArgument(f"proxies[{i}].name", f"'{p.name}' is requested twice")
            seen.add(p.name)
            override = override_from_pb(p.settings, request.proxy_defaults)
            # Validate now: a bad setting must fail the request before latency jobs are queued.
            field = f"proxies[{p.name}].settings"
            if p.name == ensemble.NAME:
                settings = ensemble.resolve(override, field)
                checked = [resolved for _, _, resolved in settings.members]
            else:
                proxy = registry.get_proxy(p.name)  # NotFound for unknown names, before work
                settings = engine.resolve_settings(proxy, override, field)
                checked = [settings]
            for resolved in checked:
                if resolved.data_kind == "registered":
                    # An unknown id is NOT_FOUND for the request, not a per-proxy failure later.
                    datasets.usable(resolved.dataset_id, resolved.batch_size,
                                    arch.input_shape[0], arch.num_classes, field)
            calls.append((p.name, override, settings))
        return calls

    def _latency_targets(self, request: scoring_pb2.ScoreRequest, arch) -> list[LatencyRequest]:
        if len(request.devices) > MAX_DEVICES_PER_REQUEST:
            raise InvalidArgument("devices", f"at most {MAX_DEVICES_PER_REQUEST} device targets")
        targets = []
        for i, d in enumerate(request.devices):
            self._latency.check_device_class(d.device_class, f"devices[{i}].device_class",
                                             request.allow_predicted, arch.space)
            settings = resolve_measurement(d.settings, arch, f"devices[{i}].settings")
            targets.append(LatencyRequest(d.device_class, settings))
        return targets

    # -- RPCs -------------------------------------------------------------------------------

    @unary
    def Score(self, request: scoring_pb2.ScoreRequest,
              context: grpc.ServicerContext) -> scoring_pb2.ScoreResult:
        return self.score(request)

    def ScoreStream(self, request_iterator: Iterator[scoring_pb2.ScoreRequest],
                    context: grpc.ServicerContext) -> Iterator[scoring_pb2.ScoreStreamItem]:
        done: queue.Queue = queue.Queue()
        state = {"submitted": 0, "reader_done": False}
        study = f"stream-{uuid.uuid4().hex}"  # a Pareto objective without a study ranks here
        lock = threading.Lock()

        def run(req: scoring_pb2.ScoreRequest) -> scoring_pb2.ScoreStreamItem:
            try:
                return scoring_pb2.ScoreStreamItem(request_id=req.request_id,
                                                   result=self.score(req, study))
            except Exception as exc:  # noqa: BLE001 - per-item error boundary
                code, message = status_of(exc)
                if not isinstance(exc, ServerError):
                    log.error("ScoreStream item %s failed", req.request_id, exc_info=exc)
                return scoring_pb2.ScoreStreamItem(
                    request_id=req.request_id,
                    error=common_pb2.ItemStatus(code=code.value[0], message=message))

        def read() -> None:
            try:
                for n, req in enumerate(request_iterator):
                    if not req.request_id:
                        req.request_id = str(n)
                    with lock:
                        state["submitted"] += 1
                    # Each item runs in a copy of the RPC's context: its log lines carry the
                    # stream's request id (one context cannot be entered by two threads).
                    self._stream_pool.submit(contextvars.copy_context().run, run, req
                                             ).add_done_callback(
                        lambda f: done.put(f.result()))
            except Exception:  # noqa: BLE001 - the client cancelled or broke the stream
                log.debug("ScoreStream reader stopped", exc_info=True)
            finally:
                with lock:
                    state["reader_done"] = True
                done.put(None)

        threading.Thread(target=contextvars.copy_context().run, args=(read,),
                         name="score-stream-reader", daemon=True).start()
        sent = 0
        try:
            while context.is_active():
                item = done.get()
                if item is not None:
                    sent += 1
                    yield item
                with lock:
                    if state["reader_done"] and sent == state["submitted"]:
                        return
        except Exception as exc:  # noqa: BLE001
            abort_with(context, exc, "ScoreStream")

    @unary
    def ListProxies(self, request: scoring_pb2.ListProxiesRequest,
                    context: grpc.ServicerContext) -> scoring_pb2.ListProxiesResponse:
        response = scoring_pb2.ListProxiesResponse()
        for proxy in registry.all_proxies():
            response.proxies.append(scoring_pb2.ProxyInfo(
                name=proxy.name, description=proxy.description, unit=proxy.unit,
                transform=proxy.transform, needs_data=proxy.needs_data,
                needs_labels=proxy.needs_labels, reference=proxy.reference,
                defaults=settings_to_pb(engine.resolve_settings(proxy, None))))
        members = ensemble.resolve(SettingsOverride(), "ensemble").members
        response.proxies.append(scoring_pb2.ProxyInfo(
            name=ensemble.NAME, description=ensemble.DESCRIPTION, unit=ensemble.UNIT,
            transform=ensemble.TRANSFORM,
            needs_data=any(registry.get_proxy(n).needs_data for n, _, _ in members),
            needs_labels=any(registry.get_proxy(n).needs_labels for n, _, _ in members),
            reference="Li et al., zero-shot NAS survey (TPAMI 2024): proxy ensembles",
            defaults=common_pb2.ProxySettings(
                extra={ensemble.MEMBERS_KEY: ",".join(ensemble.DEFAULT_MEMBERS)})))
        return response

    @unary
    def ListSearchSpaces(self, request: scoring_pb2.ListSearchSpacesRequest,
                         context: grpc.ServicerContext) -> scoring_pb2.ListSearchSpacesResponse:
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
    def RegisterDataset(self, request: scoring_pb2.RegisterDatasetRequest,
                        context: grpc.ServicerContext) -> scoring_pb2.RegisterDatasetResponse:
        dataset_id = datasets.STORE.register(request.name, request.images, list(request.shape),
                                             list(request.labels))
        log.info("registered dataset %s (%r, shape %s, %d labels)", dataset_id[:12],
                 request.name, list(request.shape), len(request.labels))
        return scoring_pb2.RegisterDatasetResponse(dataset_id=dataset_id)

    def close(self) -> None:
        self._stream_pool.shutdown(wait=False, cancel_futures=True)
