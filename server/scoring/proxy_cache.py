"""Proxy values kept in the store: a value computed once is served again, marked CACHED.

Same arch, proxy, resolved settings, class count, resolution, device type, torch thread count and
code version give a bit-identical value (the engine's determinism guarantee), so they identify a
stored one. Only successful values are kept: a failure may be transient (out of memory) and costs
little to redo.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Optional

from edgescore.server.compute.units import TORCH_THREADS
from edgescore.server.proxies.base import ResolvedSettings
from edgescore.server.proxies.engine import ProxyOutcome
from edgescore.server.proxies.registry import get_proxy
from edgescore.server.spaces.base import ParsedArch
from edgescore.server.store import ProxyKey, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Served:
    """A proxy's outcome as a request gets it: computed for it, or read from the store."""

    outcome: ProxyOutcome
    cached: bool


class ProxyCache:
    def __init__(self, store: Optional[Store], device: str) -> None:
        self.store = store
        # CPU and CUDA kernels round differently: a value belongs to the device type.
        self.device_type = device.split(":")[0]

    def key(self, arch: ParsedArch, proxy: str, settings: ResolvedSettings) -> ProxyKey:
        # Several proxies round differently on more torch threads: the count is part of the key.
        identity = {**dataclasses.asdict(settings), "num_classes": arch.num_classes,
                    "input_resolution": arch.input_resolution, "device": self.device_type,
                    "torch_threads": TORCH_THREADS}
        return ProxyKey.make(arch.arch_hash, arch.space, proxy, identity)

    def lookup(self, arch: ParsedArch, proxy: str, settings: ResolvedSettings
               ) -> Optional[ProxyOutcome]:
        if self.store is None:
            return None
        record = self.store.get_proxy_result(self.key(arch, proxy, settings))
        if record is None or record.value is None:
            return None
        spec = get_proxy(proxy)
        return ProxyOutcome(name=proxy, value=record.value, unit=spec.unit,
                            transform=spec.transform, settings=settings, seconds=record.seconds,
                            flags=record.flags)

    def save(self, arch: ParsedArch, outcome: ProxyOutcome) -> None:
        if self.store is None or outcome.error is not None or outcome.value is None:
            return
        try:
            self.store.put_proxy_result(self.key(arch, outcome.name, outcome.settings),
                                        outcome.value, flags=outcome.flags,
                                        seconds=outcome.seconds)
        except Exception:  # noqa: BLE001 - a full disk must not fail the request it answers
            log.warning("could not store %s of %s", outcome.name, arch.canonical, exc_info=True)
