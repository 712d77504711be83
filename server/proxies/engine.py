"""Runs a request's proxies on one architecture: settings, seeding, init, shared passes,
isolation, errors."""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import nn

from ..errors import InvalidArgument, NumericalFailure, ResourceExhausted, ServerError
from ..global_rng import GLOBAL_RNG_LOCK
from ..spaces.base import ParsedArch, SearchSpace
from . import data
from .base import (
    DATA_KINDS,
    INITS,
    Proxy,
    ProxyInput,
    ResolvedSettings,
    SettingsOverride,
    SharedPass,
)
from .registry import get_proxy

log = logging.getLogger(__name__)

BATCH_SIZE_RANGE = (1, 4096)
REPEATS_RANGE = (1, 100)
SEED_RANGE = (0, 2**63 - 1)
MAX_EXTRA_CHARS = 256
_NETWORK_CACHE_SIZE = 4  # networks kept per request, keyed by (seed, init, variant)


@dataclass
class ProxyOutcome:
    name: str
    value: Optional[float]
    unit: str
    transform: str
    settings: ResolvedSettings
    seconds: float
    error: Optional[ServerError] = None
    flags: tuple[str, ...] = ()


def _check_range(field: str, value: int, bounds: tuple[int, int]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(field, f"must be an integer, got {value!r}")
    if not bounds[0] <= value <= bounds[1]:
        raise InvalidArgument(field, f"must be in {bounds[0]}..{bounds[1]}, got {value}")
    return value


def resolve_settings(proxy: Proxy, override: Optional[SettingsOverride],
                     field: str = "settings") -> ResolvedSettings:
    """The proxy's defaults overlaid with `override`, validated; `field` prefixes error fields."""
    o = override or SettingsOverride()

    def pick(value, default):
        return default if value is None else value

    batch_size = _check_range(f"{field}.batch_size", pick(o.batch_size, proxy.batch_size),
                              BATCH_SIZE_RANGE)
    seed = _check_range(f"{field}.seed", pick(o.seed, proxy.seed), SEED_RANGE)
    repeats = _check_range(f"{field}.repeats", pick(o.repeats, proxy.repeats), REPEATS_RANGE)
    if seed + repeats - 1 > SEED_RANGE[1]:
        raise InvalidArgument(f"{field}.seed", "seed + repeats - 1 overflows the seed range")
    init = pick(o.init, proxy.init)
    if init not in INITS:
        raise InvalidArgument(f"{field}.init", f"unknown init {init!r}; known: {', '.join(INITS)}")
    data_kind = pick(o.data_kind, proxy.data_kind)
    if data_kind not in DATA_KINDS:
        raise InvalidArgument(f"{field}.data_kind",
                              f"unknown data kind {data_kind!r}; known: {', '.join(DATA_KINDS)}")
    dataset_id = pick(o.dataset_id, "")
    if data_kind == "registered" and not dataset_id:
        raise InvalidArgument(f"{field}.dataset_id", "data kind 'registered' needs a dataset_id")
    extra = dict(pick(o.extra, {}))
    for key, value in extra.items():
        if key not in proxy.extra_choices:
            known = ", ".join(proxy.extra_choices) or "none"
            raise InvalidArgument(f"{field}.extra", f"unknown key {key!r} for {proxy.name}; "
                                                    f"known: {known}")
        if not isinstance(value, str) or len(value) > MAX_EXTRA_CHARS:
            raise InvalidArgument(f"{field}.extra[{key}]", "must be a string of at most "
                                                           f"{MAX_EXTRA_CHARS} characters")
        allowed = proxy.extra_choices[key]
        if allowed and value not in allowed:
            raise InvalidArgument(f"{field}.extra[{key}]",
                                  f"unknown value {value!r}; known: {', '.join(allowed)}")
    for key, allowed in proxy.extra_choices.items():
        if allowed and key not in extra:
            extra[key] = allowed[0]  # what the proxy runs with, echoed as settings
    if not proxy.needs_data:
        # Data-free proxies run on their own fixed input; report that, not an unused request.
        batch_size, data_kind, dataset_id = proxy.batch_size, proxy.data_kind, ""
    limit = data.max_batch_size(data_kind)
    if limit is not None and batch_size > limit:
        raise InvalidArgument(f"{field}.batch_size",
                              f"data kind {data_kind!r} supplies at most {limit} images")
    # Sorted: equal settings must look equal (call dedupe and population keys use the repr).
    return ResolvedSettings(batch_size=batch_size, seed=seed, init=init, repeats=repeats,
                            data_kind=data_kind, dataset_id=dataset_id,
                            extra=dict(sorted(extra.items())))


def _parse_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidArgument("device", f"not a torch device: {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgument("device", "CUDA is not available on this server")
    return dev


def _apply_init(network: nn.Module, init: str) -> None:
    # Weights of Conv2d/Linear only, biases and BN untouched, as zero-cost-nas's init_net with
    # init_b_type='none'. "normal" is N(0, 1) (nn.init.normal_ defaults), the NASWOT repo's intent.
    schemes = {"kaiming": nn.init.kaiming_normal_, "xavier": nn.init.xavier_normal_,
               "normal": nn.init.normal_}
    if init == "default":
        return
    for module in network.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            schemes[init](module.weight)


class _Networks:
    """Freshly built networks of one request, shared by proxies that promise not to change them."""

    def __init__(self, space: SearchSpace, arch: ParsedArch, device: torch.device) -> None:
        self.space, self.arch, self.device = space, arch, device
        self.cache: OrderedDict[tuple[int, str, str], nn.Module] = OrderedDict()

    def variant_for(self, settings: ResolvedSettings) -> str:
        """The network a proxy runs on: the one its "network" setting names, if the space can
        build it; otherwise ("") the space's own (e.g. TE-NAS's small networks, which the proxy
        builds itself, or a zero-cost-nas model the space does not have)."""
        wanted = settings.extra.get("network", "")
        variants = self.space.network_variants
        # The first variant is the space's own network: "" shares it with every other proxy.
        return wanted if wanted in variants[1:] else ""

    def get(self, seed: int, init: str, private: bool, variant: str = "") -> nn.Module:
        key = (seed, init, variant)
        if key not in self.cache:
            with GLOBAL_RNG_LOCK:
                # Seeding right before the build makes the initial weights a function of the seed.
                torch.manual_seed(seed)
                network = (self.space.build(self.arch, variant) if variant
                           else self.space.build(self.arch))
                _apply_init(network, init)
            self.cache[key] = network.to(self.device).train()
            while len(self.cache) > _NETWORK_CACHE_SIZE:
                self.cache.popitem(last=False)
        self.cache.move_to_end(key)
        network = self.cache[key]
        return copy.deepcopy(network) if private else network


# What identifies a pass's input: everything that reaches the network or the batch.
_PassKey = tuple[str, int, str, int, str, str, str, str]


def _pass_key(shared: SharedPass, settings: ResolvedSettings, normalisation: str,
              variant: str) -> _PassKey:
    return (shared.name, settings.seed, settings.init, settings.batch_size, settings.data_kind,
            settings.dataset_id, normalisation, variant)


@dataclass
class _PassEntry:
    result: Any
    flags: tuple[str, ...]
    error: Optional[BaseException]


class _SharedPassFailed(Exception):
    """A shared pass failed; each proxy that needed it reports the reason under its own name."""

    def __init__(self, shared: SharedPass, error: BaseException) -> None:
        super().__init__(shared.name)
        self.shared, self.error = shared, error

    def for_proxy(self, proxy: str, device: torch.device) -> ServerError:
        where = f"{proxy}: shared pass '{self.shared.name}'"
        if isinstance(self.error, ServerError):
            out = copy.copy(self.error)  # keeps the class (status code) and fields
            out.message = f"{where} failed: {self.error.message}"
            out.args = (out.message,)
            return out
        if isinstance(self.error, torch.OutOfMemoryError):
            return ResourceExhausted(f"{where}: out of memory on {device}, even one sample at a "
                                     "time")
        return ServerError(f"{where} failed ({_short_reason(self.error)})")


class _Passes:
    """Shared-pass results of one request. `uses` counts the proxy runs planned for each key, so a
    result is dropped once its last user has read it (repeats would otherwise pile them up)."""

    def __init__(self, networks: _Networks, uses: Counter) -> None:
        self.networks, self.uses = networks, uses
        self.entries: dict[_PassKey, _PassEntry] = {}

    def get(self, shared: SharedPass, settings: ResolvedSettings, normalisation: str
            ) -> tuple[Any, tuple[str, ...]]:
        variant = self.networks.variant_for(settings)
        key = _pass_key(shared, settings, normalisation, variant)
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = self._run(shared, settings, normalisation, variant)
        self.uses[key] -= 1
        if self.uses[key] <= 0:
            self.entries.pop(key, None)
        if entry.error is not None:
            raise _SharedPassFailed(shared, entry.error)
        return entry.result, entry.flags

    def _run(self, shared: SharedPass, settings: ResolvedSettings, normalisation: str,
             variant: str) -> _PassEntry:
        # Only the key's fields reach the pass: a proxy's extra options or repeats must not change
        # a result that other proxies read.
        pass_settings = dataclasses.replace(settings, repeats=1, extra={})
        inp = ProxyInput(
            network=self.networks.get(settings.seed, settings.init, shared.mutates_network,
                                      variant),
            arch=self.networks.arch, settings=pass_settings, device=self.networks.device,
            normalisation=normalisation)
        try:
            return _PassEntry(shared.run(inp), tuple(inp.flags), None)
        except Exception as exc:  # kept, and raised again for each proxy that needs the result
            if not isinstance(exc, (ServerError, torch.OutOfMemoryError)):
                log.warning("shared pass %s failed on %s", shared.name,
                            self.networks.arch.canonical, exc_info=True)
            # The traceback holds the failed attempt's frames (and, after an OOM, its tensors).
            return _PassEntry(None, tuple(inp.flags), exc.with_traceback(None))


def _planned_pass_uses(plan: Sequence[tuple[Proxy, ResolvedSettings]], networks: _Networks
                       ) -> Counter:
    uses: Counter = Counter()
    for proxy, settings in plan:
        if proxy.shared_pass is not None:
            variant = networks.variant_for(settings)
            for r in range(settings.repeats):
                run = dataclasses.replace(settings, seed=settings.seed + r)
                uses[_pass_key(proxy.shared_pass, run, proxy.normalisation, variant)] += 1
    return uses


def _short_reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first[:160]}" if first else type(exc).__name__


Checkpoint = Callable[[], None]


def _no_checkpoint() -> None:
    pass


def _run_one(proxy: Proxy, settings: ResolvedSettings, networks: _Networks,
             passes: _Passes, checkpoint: Checkpoint = _no_checkpoint) -> ProxyOutcome:
    start = time.perf_counter()
    flags: list[str] = list(networks.arch.flags)
    value: Optional[float] = None
    error: Optional[ServerError] = None
    try:
        values = []
        # Repeat r runs on seed + r (network and batch); the served value is the mean.
        for r in range(settings.repeats):
            checkpoint()  # WorkAbandoned (a BaseException) passes every handler below
            seed = settings.seed + r
            run_settings = dataclasses.replace(settings, seed=seed)
            inp = ProxyInput(
                network=networks.get(seed, settings.init, proxy.mutates_network,
                                     networks.variant_for(settings)),
                arch=networks.arch, settings=run_settings, device=networks.device,
                normalisation=proxy.normalisation)
            if proxy.shared_pass is not None:
                inp.shared, pass_flags = passes.get(proxy.shared_pass, run_settings,
                                                    proxy.normalisation)
                flags.extend(pass_flags)
            v = float(proxy.compute(inp))
            flags.extend(inp.flags)
            if not math.isfinite(v):
                raise NumericalFailure(f"{proxy.name}: non-finite value {v}")
            values.append(v)
        value = math.fsum(values) / len(values)
    except ServerError as exc:
        error = exc
    except _SharedPassFailed as exc:
        error = exc.for_proxy(proxy.name, networks.device)
    except torch.OutOfMemoryError:
        error = ResourceExhausted(f"{proxy.name}: out of memory on {networks.device}")
    except Exception as exc:  # a proxy bug or an odd network must not take down the request
        log.warning("proxy %s failed on %s", proxy.name, networks.arch.canonical, exc_info=True)
        error = ServerError(f"{proxy.name}: failed ({_short_reason(exc)})")
    return ProxyOutcome(name=proxy.name, value=value if error is None else None, unit=proxy.unit,
                        transform=proxy.transform, settings=settings,
                        seconds=time.perf_counter() - start, error=error,
                        flags=tuple(dict.fromkeys(flags)))


def compute_proxies(space: SearchSpace, arch: ParsedArch,
                    calls: Sequence[tuple[str, SettingsOverride]],
                    device: str = "cpu") -> list[ProxyOutcome]:
    """One outcome per call, in order (see `iter_proxies`)."""
    return list(iter_proxies(space, arch, calls, device))


def iter_proxies(space: SearchSpace, arch: ParsedArch,
                 calls: Sequence[tuple[str, SettingsOverride]], device: str = "cpu",
                 checkpoint: Checkpoint = _no_checkpoint) -> Iterator[ProxyOutcome]:
    """One outcome per call, in order, each as soon as it is computed. Unknown names and bad
    settings raise before anything runs; failures while computing are reported per proxy in
    `ProxyOutcome.error`. `checkpoint()` is called before every proxy run (each repeat): a
    compute worker stops abandoned work there by raising `errors.WorkAbandoned`.

    Proxies with a `shared_pass` read one result per (pass, seed, init, batch, data,
    normalisation): the first of them to run computes it (its `seconds` include the pass), the
    others reuse it, so a value is the same whether its proxy is requested alone or with others."""
    dev = _parse_device(device)
    plan = []
    for name, override in calls:
        proxy = get_proxy(name)
        plan.append((proxy, resolve_settings(proxy, override, f"proxies[{name}].settings")))
    if dev.type == "cuda":
        # The references' own setting: deterministic cuDNN kernels, so a seed fixes the value.
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    networks = _Networks(space, arch, dev)
    # A space may know a proxy without building a network (ONNX: #Params, FLOPs from the graph).
    known = {proxy.name: value for proxy, _ in plan
             if (value := space.static_proxy(arch, proxy.name)) is not None}
    passes = _Passes(networks, _planned_pass_uses(
        [(p, s) for p, s in plan if p.name not in known], networks))
    for proxy, settings in plan:
        if proxy.name in known:
            yield ProxyOutcome(name=proxy.name, value=known[proxy.name], unit=proxy.unit,
                               transform=proxy.transform, settings=settings, seconds=0.0)
        else:
            checkpoint()
            yield _run_one(proxy, settings, networks, passes, checkpoint)
