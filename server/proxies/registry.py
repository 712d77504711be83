"""Proxy discovery: every module of this package with a module-level `PROXY` is served, a
`Proxy` (computed on a network) or a `Composite` (combined from other proxies' values).

Adding a proxy is one new file; nothing here lists proxies by hand.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import Union

from edgescore.server.errors import NotFound, shown
from edgescore.server.proxies.base import Composite, Proxy

# Infrastructure modules of the package: never proxies, and importing `engine` from here would
# only create a cycle.
_NOT_PROXIES = frozenset({"base", "data", "engine", "registry"})

Served = Union[Proxy, Composite]


@functools.lru_cache(maxsize=1)
def _discover() -> dict[str, Served]:
    package = importlib.import_module(__package__)
    found: dict[str, Served] = {}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name in _NOT_PROXIES or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__package__}.{info.name}")
        proxy = getattr(module, "PROXY", None)
        if proxy is None:
            continue
        if not isinstance(proxy, (Proxy, Composite)):
            raise TypeError(f"{module.__name__}.PROXY is a {type(proxy).__name__}, not a Proxy "
                            "or a Composite")
        if proxy.name in found:
            raise RuntimeError(f"two modules declare the proxy name {proxy.name!r}")
        found[proxy.name] = proxy
    return dict(sorted(found.items()))


def get(name: str) -> Served:
    """Any served proxy, computed or composite."""
    served = _discover()
    if name not in served:
        raise NotFound(f"unknown proxy {shown(name)}; known: {', '.join(served)}")
    return served[name]


def get_proxy(name: str) -> Proxy:
    """A proxy computed on a network (what the engine runs)."""
    proxies = {p.name: p for p in all_proxies()}
    if name not in proxies:
        raise NotFound(f"unknown proxy {shown(name)}; known: {', '.join(proxies)}")
    return proxies[name]


def get_composite(name: str) -> Composite:
    """A composite proxy."""
    composites = {c.name: c for c in all_composites()}
    if name not in composites:
        raise NotFound(f"unknown composite proxy {shown(name)}; known: {', '.join(composites)}")
    return composites[name]


def all_proxies() -> list[Proxy]:
    """Every proxy computed on a network, sorted by name."""
    return [p for p in _discover().values() if isinstance(p, Proxy)]


def all_composites() -> list[Composite]:
    """Every composite proxy, sorted by name."""
    return [p for p in _discover().values() if isinstance(p, Composite)]
