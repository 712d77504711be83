"""Proxy discovery: every module of this package with a module-level `PROXY` is served.

Adding a proxy is one new file; nothing here lists proxies by hand.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from ..errors import NotFound
from .base import Proxy

# Infrastructure modules of the package: never proxies, and importing `engine` from here would
# only create a cycle.
_NOT_PROXIES = frozenset({"base", "data", "engine", "registry"})


@functools.lru_cache(maxsize=1)
def _discover() -> dict[str, Proxy]:
    package = importlib.import_module(__package__)
    found: dict[str, Proxy] = {}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name in _NOT_PROXIES or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__package__}.{info.name}")
        proxy = getattr(module, "PROXY", None)
        if proxy is None:
            continue
        if not isinstance(proxy, Proxy):
            raise TypeError(f"{module.__name__}.PROXY is a {type(proxy).__name__}, not a Proxy")
        if proxy.name in found:
            raise RuntimeError(f"two modules declare the proxy name {proxy.name!r}")
        found[proxy.name] = proxy
    return dict(sorted(found.items()))


def get_proxy(name: str) -> Proxy:
    proxies = _discover()
    if name not in proxies:
        raise NotFound(f"unknown proxy '{name}'; known: {', '.join(proxies)}")
    return proxies[name]


def all_proxies() -> list[Proxy]:
    """Every served proxy, sorted by name."""
    return list(_discover().values())
