"""Number of trainable layers: the size baseline of VKDNW (Tybl & Neumann, CVPR 2025)."""

from __future__ import annotations

from torch import nn

from edgescore.server.proxies.base import Proxy, ProxyInput

# extra["count"]: "tensors", the reference's len(list(model.named_parameters())) (each weight,
# bias and BN scale/shift tensor counts); "modules", modules that hold a trainable parameter of
# their own (a Conv2d with its bias counts once, a BN layer once).
COUNT_CHOICES = ("tensors", "modules")


def count_layers(network: nn.Module, count: str = COUNT_CHOICES[0]) -> int:
    if count == "modules":
        return sum(1 for m in network.modules()
                   if any(p.requires_grad for p in m.parameters(recurse=False)))
    # named_parameters yields a shared tensor once, as the reference's call does.
    return sum(1 for _, p in network.named_parameters() if p.requires_grad)


def compute(inp: ProxyInput) -> float:
    return float(count_layers(inp.network, inp.settings.extra.get("count", COUNT_CHOICES[0])))


PROXY = Proxy(
    name="num_layers",
    compute=compute,
    unit="layers",
    transform="none",
    description="Number of trainable parameter tensors of the network (weights, biases, BN "
                "scales and shifts; a shared tensor once), VKDNW's 'dimension' baseline; data-"
                "free. extra count=modules counts modules with trainable parameters instead.",
    reference="Tybl & Neumann, 'Training-free Neural Architecture Search through Variance of "
              "Knowledge of Deep Network Weights', CVPR 2025; ondratybl/VKDNW "
              "NB201/ZeroShotProxy/compute_vkdnw_score.py (info['vkdnw_dim'] = "
              "len(list(model.named_parameters()))).",
    extra_choices={"count": COUNT_CHOICES},
)
