"""Number of trainable parameters."""

from __future__ import annotations

from edgescore.server.proxies.base import Proxy, ProxyInput


def count_trainable(inp: ProxyInput) -> float:
    # .parameters() yields a shared parameter once, so tied weights are not double counted.
    return float(sum(p.numel() for p in inp.network.parameters() if p.requires_grad))


PROXY = Proxy(
    name="params",
    compute=count_trainable,
    unit="parameters",
    transform="none",
    description="Number of trainable parameters (elements of parameters with requires_grad), "
                "each shared parameter counted once; buffers such as BN running stats excluded.",
    reference="count_parameters in SamsungLabs/zero-cost-nas foresight/pruners/p_utils.py",
)
