"""TE-NAS's small networks for NAS-Bench-201 (VITA-Group/TENAS prune_tenas.py, main()).

TE-NAS never scores the benchmark's C=16, N=5 network: the NTK runs on `model_config` (C=3, N=1,
with stem) and the linear regions on `model_config_thin` (one cell of C=1, no stem, depth=1) on
one-channel 3x3 crops. Its pruning supernet with every other op removed is exactly the cell built
here. On the full network the region count saturates at the number of samples (every sample its
own pattern), which is why TE-NAS counts on the thin one.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch
from torch import nn

from edgescore.server.errors import FailedPrecondition
from edgescore.server.proxies import _seeded
from edgescore.server.spaces import nb201
from edgescore.server.spaces.base import ParsedArch

NETWORK_CHOICES = ("tenas", "full")  # extra["network"]: TE-NAS's small network, or as built
NTK_CHANNELS, NTK_CELLS = 3, 1  # model_config: C=3, N=1
REGIONS_CHANNELS = 1  # model_config_thin: C=1, one cell


def _require_nb201(arch: ParsedArch, proxy: str) -> None:
    if arch.space != nb201.SPACE.name:
        raise FailedPrecondition(
            f"{proxy}: TE-NAS's small network exists only for nb201 cells, not {arch.space!r}; "
            "use extra network=full to score the network as built")


def _build(factory: Callable[[], nn.Module], init: str, seed: int,
           device: torch.device) -> nn.Module:
    # On the meta device construction draws nothing from the global RNG; the weights then come
    # from a generator of this seed.
    with torch.device("meta"):
        network = factory()
    network = network.to_empty(device=torch.device("cpu"))
    _seeded.initialise(network, init, _seeded.generator(seed, "tenas_network"))
    return network.to(device).train()


def ntk_network(arch: ParsedArch, init: str, seed: int, device: torch.device) -> nn.Module:
    """TE-NAS's NTK network: the NB201 TinyNetwork with C=3, N=1 (stem, 3 cells, 2 reductions)."""
    _require_nb201(arch, "ntk_cond")
    return _build(lambda: nb201.TinyNetwork(arch.payload, arch.num_classes, c=NTK_CHANNELS,
                                            n=NTK_CELLS), init, seed, device)


def regions_network(arch: ParsedArch, init: str, seed: int, device: torch.device) -> nn.Module:
    """TE-NAS's thin network up to its last ReLU: one C=1 cell, then BN + ReLU (the pooling and
    classifier that follow hold no ReLU, so they cannot change an activation pattern)."""
    _require_nb201(arch, "linear_regions")
    return _build(lambda: nn.Sequential(OrderedDict(
        cell=nb201.InferCell(arch.payload, REGIONS_CHANNELS),
        bn=nn.BatchNorm2d(REGIONS_CHANNELS),
        relu=nn.ReLU(inplace=False))), init, seed, device)
