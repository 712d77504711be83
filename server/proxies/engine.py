"""Runs a request's proxies on one architecture: settings, seeding, init, shared passes,
isolation, errors."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Optional

import torch

from edgescore.server.errors import NumericalFailure, ResourceExhausted, ServerError
from edgescore.server.proxies.base import Proxy, ProxyInput, ResolvedSettings, SettingsOverride
from edgescore.server.proxies.failures import unexpected_failure
from edgescore.server.proxies.networks import RequestNetworks, parse_device
from edgescore.server.proxies.registry import get_proxy
from edgescore.server.proxies.settings import resolve_settings
from edgescore.server.proxies.shared_passes import SharedPasses, SharedPassFailed, planned_pass_uses
from edgescore.server.spaces.base import ParsedArch, SearchSpace

log = logging.getLogger(__name__)


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


Checkpoint = Callable[[], None]


def _no_checkpoint() -> None:
    pass


def _run_one(proxy: Proxy, settings: ResolvedSettings, networks: RequestNetworks,
             passes: SharedPasses, checkpoint: Checkpoint = _no_checkpoint) -> ProxyOutcome:
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
    except SharedPassFailed as exc:
        error = exc.for_proxy(proxy.name, networks.device, networks.space.networks_uploaded)
    except torch.OutOfMemoryError:
        error = ResourceExhausted(f"{proxy.name}: out of memory on {networks.device}")
    except Exception as exc:  # a proxy bug or an odd network must not take down the request
        log.warning("proxy %s failed on %s", proxy.name, networks.arch.canonical, exc_info=True)
        error = unexpected_failure(exc, f"{proxy.name}: failed", networks.device,
                                   networks.space.networks_uploaded)
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
    dev = parse_device(device)
    plan = []
    for name, override in calls:
        proxy = get_proxy(name)
        plan.append((proxy, resolve_settings(proxy, override, f"proxies[{name}].settings")))
    if dev.type == "cuda":
        # The references' own setting: deterministic cuDNN kernels, so a seed fixes the value.
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    networks = RequestNetworks(space, arch, dev)
    # A space may know a proxy without building a network (ONNX: #Params, FLOPs from the graph).
    known = {proxy.name: value for proxy, _ in plan
             if (value := space.static_proxy(arch, proxy.name)) is not None}
    passes = SharedPasses(networks, planned_pass_uses(
        [(p, s) for p, s in plan if p.name not in known], networks))
    for proxy, settings in plan:
        if proxy.name in known:
            yield ProxyOutcome(name=proxy.name, value=known[proxy.name], unit=proxy.unit,
                               transform=proxy.transform, settings=settings, seconds=0.0)
        else:
            checkpoint()
            yield _run_one(proxy, settings, networks, passes, checkpoint)
