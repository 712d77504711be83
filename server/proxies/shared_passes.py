"""Shared passes of one request: each (pass, seed, init, batch, data, normalisation, network)
computed once, read by every proxy that needs it, dropped after its last planned reader."""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

import torch

from edgescore.server.errors import ResourceExhausted, ServerError
from edgescore.server.proxies.base import Proxy, ProxyInput, ResolvedSettings, SharedPass
from edgescore.server.proxies.failures import unexpected_failure
from edgescore.server.proxies.networks import RequestNetworks

log = logging.getLogger(__name__)


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


class SharedPassFailed(Exception):
    """A shared pass failed; each proxy that needed it reports the reason under its own name."""

    def __init__(self, shared: SharedPass, error: BaseException) -> None:
        super().__init__(shared.name)
        self.shared, self.error = shared, error

    def for_proxy(self, proxy: str, device: torch.device, uploaded: bool = False) -> ServerError:
        where = f"{proxy}: shared pass '{self.shared.name}'"
        if isinstance(self.error, ServerError):
            out = copy.copy(self.error)  # keeps the class (status code) and fields
            out.message = f"{where} failed: {self.error.message}"
            out.args = (out.message,)
            return out
        if isinstance(self.error, torch.OutOfMemoryError):
            return ResourceExhausted(f"{where}: out of memory on {device}, even one sample at a "
                                     "time")
        return unexpected_failure(self.error, f"{where} failed", device, uploaded)


class SharedPasses:
    """Shared-pass results of one request. `uses` counts the proxy runs planned for each key, so a
    result is dropped once its last user has read it (repeats would otherwise pile them up)."""

    def __init__(self, networks: RequestNetworks, uses: Counter) -> None:
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
            raise SharedPassFailed(shared, entry.error)
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


def planned_pass_uses(plan: Sequence[tuple[Proxy, ResolvedSettings]], networks: RequestNetworks
                       ) -> Counter:
    uses: Counter = Counter()
    for proxy, settings in plan:
        if proxy.shared_pass is not None:
            variant = networks.variant_for(settings)
            for r in range(settings.repeats):
                run = dataclasses.replace(settings, seed=settings.seed + r)
                uses[_pass_key(proxy.shared_pass, run, proxy.normalisation, variant)] += 1
    return uses

