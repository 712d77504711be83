"""The networks of one request's proxies: built from a seed, initialised, kept for reuse."""

from __future__ import annotations

import copy
from collections import OrderedDict

import torch
from torch import nn

from edgescore.server.errors import InvalidArgument
from edgescore.server.global_rng import GLOBAL_RNG_LOCK
from edgescore.server.proxies.base import ResolvedSettings
from edgescore.server.spaces.base import ParsedArch, SearchSpace

_NETWORK_CACHE_SIZE = 4  # networks kept per request, keyed by (seed, init, variant)


def parse_device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InvalidArgument("device", f"not a torch device: {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgument("device", "CUDA is not available on this server")
    return dev


def apply_init(network: nn.Module, init: str) -> None:
    # Weights of Conv2d/Linear only, biases and BN untouched, as zero-cost-nas's init_net with
    # init_b_type='none'. "normal" is N(0, 1) (nn.init.normal_ defaults), the NASWOT repo's intent.
    schemes = {"kaiming": nn.init.kaiming_normal_, "xavier": nn.init.xavier_normal_,
               "normal": nn.init.normal_}
    if init == "default":
        return
    for module in network.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            schemes[init](module.weight)


class RequestNetworks:
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
                apply_init(network, init)
            self.cache[key] = network.to(self.device).train()
            while len(self.cache) > _NETWORK_CACHE_SIZE:
                self.cache.popitem(last=False)
        self.cache.move_to_end(key)
        network = self.cache[key]
        return copy.deepcopy(network) if private else network
