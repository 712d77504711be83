"""Number of linear regions (TE-NAS, Chen et al., ICLR 2021): distinct ReLU activation patterns."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgescore.server.errors import NumericalFailure
from edgescore.server.proxies import _seeded, _tenas
from edgescore.server.proxies.base import Proxy, ProxyInput

# TE-NAS: Linear_Region_Collector(input_size=(1000, 1, 3, 3), sample_batch=3): three batches of
# 1000 one-channel 3x3 crops (RandomCrop(3) then RandChannel(1)).
CROP_CHOICES = ("3", "2", "4", "5", "8")
SAMPLE_BATCH_CHOICES = ("3", "1", "2", "4", "5", "6", "8", "10")


def _label_bytes(labels: np.ndarray) -> np.ndarray:
    return labels.astype("<u4").view(np.uint8).reshape(len(labels), 4)


class PatternCounter:
    """Counts distinct concatenated codes exactly. Codes arrive per hooked call; the partition of
    the samples into equal-so-far classes is refined call by call (np.unique over rows of
    [class id, packed bits]), so no sample's whole code is ever held at once."""

    def __init__(self, n: int) -> None:
        self.labels = np.zeros(n, dtype=np.int64)

    def add(self, codes: torch.Tensor) -> None:
        """`codes`: (n, k) bool, one row per sample."""
        packed = np.packbits(codes.cpu().numpy(), axis=1)
        rows = np.ascontiguousarray(np.concatenate([_label_bytes(self.labels), packed], axis=1))
        keys = rows.view(np.dtype((np.void, rows.shape[1]))).ravel()
        _, self.labels = np.unique(keys, return_inverse=True)
        self.labels = self.labels.reshape(-1)

    @property
    def count(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0


def activation_codes(network: nn.Module, chunks: list[torch.Tensor]) -> list[list[torch.Tensor]]:
    """Per chunk, the (rows, units) bool codes (output > 0) of every call of every nn.ReLU whose
    input is 4-D (the reference's hook_in_forward), one train-mode forward per chunk."""
    per_chunk: list[list[torch.Tensor]] = []
    current: list[torch.Tensor] = []

    def hook(_module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if inputs[0].dim() == 4:
            current.append((output > 0).reshape(output.shape[0], -1))

    handles = [m.register_forward_hook(hook) for m in network.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            for chunk in chunks:
                current = []
                network(chunk)
                per_chunk.append(current)
    finally:
        for handle in handles:
            handle.remove()
    return per_chunk


def count_regions(network: nn.Module, chunks: list[torch.Tensor]) -> int:
    """Distinct activation patterns over all samples of all chunks (each chunk is one forward, so
    train-mode BN normalises it with its own statistics, as the reference's batches)."""
    per_chunk = activation_codes(network, chunks)
    calls = {len(c) for c in per_chunk}
    if calls == {0}:
        raise NumericalFailure("linear_regions: no nn.ReLU with a 4-D input ran, so there is no "
                               "activation pattern to count")
    if len(calls) != 1:
        raise NumericalFailure("linear_regions: chunks ran different numbers of ReLU calls")
    counter = PatternCounter(sum(chunk.shape[0] for chunk in chunks))
    for call in range(calls.pop()):
        counter.add(torch.cat([codes[call] for codes in per_chunk]))
    return counter.count


def random_crops(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """One size x size crop of one channel per image, position and channel drawn from `gen` as
    RandomCrop(size) and RandChannel(1) do: (N, 1, size, size)."""
    n, channels, height, width = x.shape
    if size > min(height, width):
        raise NumericalFailure(f"linear_regions: crop {size} exceeds the {height}x{width} images")
    top = torch.randint(0, height - size + 1, (n,), generator=gen)
    left = torch.randint(0, width - size + 1, (n,), generator=gen)
    chan = torch.randint(0, channels, (n,), generator=gen)
    offs = torch.arange(size)
    rows = (top[:, None] + offs)[:, :, None].to(x.device)
    cols = (left[:, None] + offs)[:, None, :].to(x.device)
    idx = torch.arange(n, device=x.device)[:, None, None]
    return x[idx, chan.to(x.device)[:, None, None], rows, cols].unsqueeze(1)


def compute(inp: ProxyInput) -> float:
    x, _ = inp.batch()
    s = inp.settings
    if s.extra.get("network", _tenas.NETWORK_CHOICES[0]) == "full":
        # The network as built, on the calibration batch at its own resolution, one forward.
        return float(count_regions(inp.network.train(), [x]))
    network = _tenas.regions_network(inp.arch, s.init, s.seed, inp.device)
    gen = _seeded.generator(s.seed, "linear_regions_crops")
    crop = int(s.extra.get("crop", CROP_CHOICES[0]))
    batches = int(s.extra.get("sample_batches", SAMPLE_BATCH_CHOICES[0]))
    return float(count_regions(network, [random_crops(x, crop, gen) for _ in range(batches)]))


PROXY = Proxy(
    name="linear_regions",
    compute=compute,
    unit="linear regions",
    transform="none",
    description="Number of distinct ReLU activation patterns (sign of every unit of every nn.ReLU "
                "with a 4-D input, concatenated per sample; counted exactly) over the samples. "
                "Default (extra network=tenas, nb201 only): TE-NAS's thin network (one C=1 cell, "
                "BN, ReLU; no stem) in train mode, on sample_batches=3 forwards of one random "
                "crop x crop (3x3) patch of one random channel of each of the batch_size (1000) "
                "real CIFAR-10 images (NB201 mean/std): at most 3000. network=full counts on "
                "the network as built over the batch at full resolution, where nearly every "
                "sample has its own pattern (the count saturates at batch_size).",
    reference="Chen, Gong & Wang, 'Neural Architecture Search on ImageNet in Four GPU Hours: A "
              "Theoretically Inspired Perspective' (TE-NAS), ICLR 2021; VITA-Group/TENAS "
              "lib/procedures/linear_region_counter.py (LinearRegionCount, "
              "Linear_Region_Collector) and prune_tenas.py (input_size (1000, 1, 3, 3), "
              "sample_batch 3, model_config_thin C=1 N=1 depth 1 no stem, repeat 3).",
    needs_data=True,
    mutates_network=True,  # network=full: train-mode forward moves BN running stats
    batch_size=1000,
    data_kind="cifar10",
    repeats=3,
    normalisation="nb201",
    extra_choices={"network": _tenas.NETWORK_CHOICES, "crop": CROP_CHOICES,
                   "sample_batches": SAMPLE_BATCH_CHOICES},
)
