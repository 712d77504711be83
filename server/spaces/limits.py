"""Size caps on one candidate, checked before any proxy or export touches it.

The figures come from the network built on the meta device (shapes only, no memory), so a
request for a billion-parameter network costs milliseconds to refuse, not a server's RAM.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch

from edgescore.server.errors import ResourceExhausted
from edgescore.server.proxies.flops import count_macs
from edgescore.server.spaces.base import ParsedArch, SearchSpace

_KNOWN = 4096  # archs whose figures are remembered (a search asks for the same ones again)


@dataclass(frozen=True)
class Limits:
    max_params: int = 500_000_000
    max_macs: int = 100_000_000_000
    max_input_resolution: int = 1024
    max_onnx_bytes: int = 200 * 1024 * 1024
    max_graph_nodes: int = 50_000
    max_activation_mb: int = 4096


@dataclass(frozen=True)
class Size:
    params: int
    macs: int


def measure(space: SearchSpace, arch: ParsedArch) -> Size:
    """Parameters and MACs (batch 1) of the network `space` builds, on the meta device."""
    with torch.device("meta"):
        network = space.build(arch)
    params = sum(p.numel() for p in network.parameters())
    macs = count_macs(network, arch.input_shape, device="meta")
    return Size(params, macs)


def _over(what: str, figure: int, cap: int) -> ResourceExhausted:
    return ResourceExhausted(f"arch: {what} {figure:,} exceeds the server's cap of {cap:,}")


class SizeCheck:
    """`check(space, arch)` raises ResourceExhausted naming the figure and the cap."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._sizes: OrderedDict[tuple, Size] = OrderedDict()
        self._lock = threading.Lock()

    def check_upload(self, spec: object) -> None:
        """Before parsing: an uploaded model's byte count (parsing costs its size in memory)."""
        data = getattr(spec, "model", b"")
        if isinstance(data, bytes) and len(data) > self.limits.max_onnx_bytes:
            raise _over("ONNX bytes", len(data), self.limits.max_onnx_bytes)

    def check(self, space: SearchSpace, arch: ParsedArch) -> None:
        if arch.input_resolution > self.limits.max_input_resolution:
            raise _over("input resolution", arch.input_resolution,
                        self.limits.max_input_resolution)
        if space.check_size(arch, self.limits):  # e.g. ONNX: bytes, graph nodes, initializers
            return
        largest = space.largest(arch.num_classes, arch.input_resolution)
        if largest is not None:
            # A space whose biggest network is known (NB201: every edge a 3x3 conv): when that
            # one fits, every arch of the same classes and resolution does, and this one need
            # not be built at all (the check is most of a cheap request's cost otherwise).
            bound = self._size(space, largest)
            if bound.params <= self.limits.max_params and bound.macs <= self.limits.max_macs:
                return
        size = self._size(space, arch)
        if size.params > self.limits.max_params:
            raise _over("parameter count", size.params, self.limits.max_params)
        if size.macs > self.limits.max_macs:
            raise _over("MACs", size.macs, self.limits.max_macs)

    def _size(self, space: SearchSpace, arch: ParsedArch) -> Size:
        key = (arch.space, arch.arch_hash, arch.num_classes, arch.input_resolution)
        with self._lock:
            size = self._sizes.get(key)
        if size is None:
            size = measure(space, arch)
            with self._lock:
                self._sizes[key] = size
                while len(self._sizes) > _KNOWN:
                    self._sizes.popitem(last=False)
        return size
