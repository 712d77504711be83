"""What SWAP and regularised SWAP share: counting distinct sample-wise activation patterns over
re-initialised networks (Peng et al., ICLR 2024; pym1024/SWAP src/metrics/swap.py)."""

from __future__ import annotations

import torch
from torch import nn

from edgescore.server.errors import FailedPrecondition, NumericalFailure
from edgescore.server.proxies import _seeded
from edgescore.server.proxies._hooks import hooked_forward
from edgescore.server.proxies.base import ProxyInput

# extra["inits"]: weight draws averaged over one fixed batch (correlation.py --repeats 32).
INIT_CHOICES = ("32", "1", "4", "8", "16")
# Samples per float32 word: sums of distinct powers of 2 below 2^24 are exact in float32, so a
# matrix-vector product packs the bits (float64 or integer ops are several times slower on CPU).
_WORD_BITS = 24
# The protocol swap and swap_reg share (`Proxy(..., **PROTOCOL)`): 16 real images, N(0, 1)
# weights; weight redraws, zeroed biases and train-mode BN statistics all change the network.
PROTOCOL = {"needs_data": True, "mutates_network": True, "batch_size": 16, "data_kind": "cifar10",
            "init": "normal", "normalisation": "nb201"}
_SCHEMES = {"normal": nn.init.normal_, "kaiming": nn.init.kaiming_normal_,
            "xavier": nn.init.xavier_normal_}


def _pack(codes: torch.Tensor) -> torch.Tensor:
    """(samples, neurons) bool -> (neurons, keys) int64: neuron j's pattern over the samples as
    bits (two 24-bit words per key), so two neurons share a pattern iff their rows are equal."""
    samples = codes.shape[0]
    words = []
    for lo in range(0, samples, _WORD_BITS):
        chunk = codes[lo:lo + _WORD_BITS].to(torch.float32)
        weights = torch.pow(2.0, torch.arange(chunk.shape[0], dtype=torch.float32,
                                              device=codes.device))
        words.append((weights @ chunk).to(torch.int64))
    keys = [words[i] if i + 1 == len(words) else words[i] + (words[i + 1] << _WORD_BITS)
            for i in range(0, len(words), 2)]
    return torch.stack(keys, dim=1)


def swap_count(network: nn.Module, x: torch.Tensor, name: str = "swap") -> int:
    """Number of distinct sample-wise patterns (output > 0 on each sample) over every neuron of
    every nn.ReLU/ReLU6 call on a 4-D input, in one no-grad forward of `x` (network's mode)."""
    packed: list[torch.Tensor] = []

    def hook(_module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        # The reference records only ReLUs on conv feature maps (input of 4 dimensions).
        if not (isinstance(inputs, tuple) and inputs and inputs[0].dim() == 4):
            return
        flat = output.detach().reshape(output.shape[0], -1)
        if not bool(torch.isfinite(flat).all()):
            raise NumericalFailure(f"{name}: non-finite activation in a ReLU output")
        # Packed at once: an in-place op after the ReLU cannot change what was recorded.
        packed.append(_pack(flat > 0))

    # ReLU6 is on exactly where ReLU is (sign of the output), so it counts alike.
    hooked_forward(network, x, (m for m in network.modules()
                                if isinstance(m, (nn.ReLU, nn.ReLU6))), hook)
    if not packed:
        raise FailedPrecondition(
            f"{name}: no nn.ReLU ran on a 4-D (conv) feature map, so there are no activation "
            "patterns to count (SWAP is defined for ReLU networks; e.g. GELU/ViT has none)")
    patterns = torch.cat(packed, dim=0)
    if patterns.shape[1] == 1:
        return int(torch.unique(patterns[:, 0]).numel())
    return int(torch.unique(patterns, dim=0).shape[0])


def redraw(network: nn.Module, init: str, gen: torch.Generator) -> None:
    """New weights as the reference's network_weight_gaussian_init: Conv2d/Linear weights from
    the engine's scheme (N(0, 1) for "normal"), their biases 0, BN/GroupNorm affine 1 and 0."""
    with torch.no_grad():
        for m in network.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                if init in _SCHEMES:
                    _SCHEMES[init](m.weight, generator=gen)
                else:
                    _seeded._default_init(m, gen)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)) and m.affine:
                m.weight.fill_(1.0)
                m.bias.zero_()


def mean_swap(inp: ProxyInput, name: str = "swap") -> float:
    """SWAP averaged over extra inits weight draws on one batch: the first draw is the
    engine's network (biases zeroed), the others come from a generator of the seed."""
    x, _ = inp.batch()
    inits = int(inp.settings.extra.get("inits", INIT_CHOICES[0]))
    network = inp.network.train()
    gen = _seeded.generator(inp.settings.seed, "swap_inits")
    total = 0
    for k in range(inits):
        if k == 0:
            with torch.no_grad():
                for m in network.modules():
                    if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                        m.bias.zero_()
        else:
            redraw(network, inp.settings.init, gen)
        total += swap_count(network, x, name)
    return total / inits


def kilo_params(network: nn.Module) -> float:
    """Parameters in thousands, as the reference's count_parameters (names containing
    'auxiliary' left out; a shared parameter counted once)."""
    return sum(p.numel() for name, p in network.named_parameters()
               if "auxiliary" not in name) / 1e3
