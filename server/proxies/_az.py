"""AZ-NAS's one forward and backward (Lee & Ham, 'AZ-NAS: Assembling Zero-Cost Proxies for Network
Architecture Search', CVPR 2024; cvlab-yonsei/AZ-NAS, NB201/ZeroShotProxy/compute_az_nas_score.py,
ImageNet_MBV2/ZeroShotProxy/compute_az_nas_score.py and ImageNet_AutoFormer/lib/training_free/
indicators/az_nas.py): the feature map of every block, its expressivity, and the trainability of
every consecutive pair of blocks. `az_expressivity`, `az_progressivity` and `az_trainability` read
this one pass (`AZ_NAS`), so asking for all three costs one forward and one backward.

Which feature maps (the reference hooks its own networks' blocks; the rule here reproduces its
choice where it has one):

  CNNs      the stem's output, then the output of every block of the network's block sequence,
            in forward order:
            nb201     stem, then the 17 entries of `cells` (15 cells, 2 ResNet reduction blocks):
                      exactly the reference's TinyNetwork.extract_cell_features (18 maps)
            nats_sss  stem, then the 5 entries of `cells` (3 cells, 2 reduction blocks)
            nb101     stem, then the 9 cells; the parameter-free max-pools between stacks are not
                      blocks (the pair across one spans the pool and the next cell)
            macro     stem, every inverted-residual block of every stage, the head's 1x1 conv:
                      the reference's MobileNet space (Masternet.extract_layer_features) reads the
                      ReLU that ends its stem, each residual block and its final 1x1 conv-BN-ReLU
            fbnet     stem, every one of the 22 layers that is not an identity `skip` (an identity
                      is no block: its map is the one before it, and the pair would pass the
                      gradient unchanged), the head's 1x1 conv, as for macro
  ViT       per layer, the two residual sums: after attention (the input of `mlp_norm`) and
            after the MLP (the layer's output); no patch-embedding map, as the reference's
            AutoFormer extract_res_features
  others    (an uploaded ONNX graph): no blocks are known, so the pass fails with
            FAILED_PRECONDITION

Per feature map F (CNN: (B, C, H, W) read as B*H*W rows of C channels; ViT: (B, N, C) as B*N rows):
  expressivity  Sigma = centred F^T F / rows; s = eigenvalues of Sigma; p = s / sum(s);
                E = sum -p * log(p + 1e-8) (the entropy of the normalised spectrum)
Per consecutive pair (F_in, F_out), last pair first as the reference:
  trainability  g_out ~ Rademacher (+-1 with probability 1/2, seeded), g_in = (dF_out/dF_in)^T g_out
                (one vector-Jacobian product); where the resolution halves, g_in goes through a
                PixelUnshuffle by the stride so that both have one spatial grid;
                M = g_in^T g_out / rows (C_in' x C_out); sigma = largest singular value of M;
                T = -sigma - 1 / (sigma + 1e-6) + 2 (0 at sigma = 1, lower either side).
                A pair whose g_in equals g_out exactly is an identity block: the CNN reference
                scores the network -inf (here: FAILED_PRECONDITION); the ViT one skips the pair.
Covariances, eigenvalues and singular values in float64 (the reference: float32).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from edgescore.server.errors import FailedPrecondition, NumericalFailure, ResourceExhausted
from edgescore.server.proxies import _seeded
from edgescore.server.proxies.base import ProxyInput, SharedPass
from edgescore.server.spaces import fbnet, macro, nb101, nb201, vit

ENTROPY_EPS = 1e-8  # the reference's log(p + 1e-8)
SIGMA_EPS = 1e-6  # the reference's 1 / (sigma + 1e-6)


@dataclass(frozen=True)
class Tap:
    """One feature map: `module`'s output, or (`reads_input`) the first input of its call."""

    name: str
    module: nn.Module
    reads_input: bool = False


@dataclass(frozen=True)
class AzStats:
    """What the three proxies read; `taps` names the feature maps in forward order."""

    taps: tuple[str, ...]
    transformer: bool
    expressivity: tuple[float, ...]  # one per feature map; NaN where the spectrum sums to 0
    # One per consecutive pair in forward order (pair k: taps[k] -> taps[k+1]); None where the
    # pair is an identity block (g_in == g_out exactly).
    trainability: tuple[Optional[float], ...]


def block_taps(network: nn.Module) -> tuple[list[Tap], bool]:
    """The feature maps AZ-NAS reads in `network` (see the module docstring), and whether it is a
    transformer. FailedPrecondition for a network whose blocks are not known."""
    if isinstance(network, vit.VisionTransformer):
        taps = []
        for i, block in enumerate(network.blocks):
            taps.append(Tap(f"blocks.{i}.attention_residual", block.mlp_norm, reads_input=True))
            taps.append(Tap(f"blocks.{i}", block))
        return taps, True
    if isinstance(network, nb201.CellNetwork):  # NB201's TinyNetwork, NATS-SSS's network
        return [Tap("stem", network.stem)] + [
            Tap(f"cells.{i}", cell) for i, cell in enumerate(network.cells)], False
    if isinstance(network, nb101.Nb101Network):
        return [Tap("stem", network.stem)] + [
            Tap(f"cells.{i}", cell) for i, cell in enumerate(network.cells)
            if any(True for _ in cell.parameters())], False
    if isinstance(network, macro.MacroNetwork):
        taps = [Tap("stem", network.stem)]
        for s, stage in enumerate(network.stages):
            taps.extend(Tap(f"stages.{s}.{b}", block) for b, block in enumerate(stage))
        return taps + [Tap("head", network.head)], False
    if isinstance(network, fbnet.FbnetNetwork):
        return [Tap("stem", network.stem)] + [
            Tap(f"layers.{i}", layer) for i, layer in enumerate(network.layers)
            if not isinstance(layer, nn.Identity)] + [Tap("head", network.head)], False
    raise FailedPrecondition(
        f"AZ-NAS reads the output of every block, and the blocks of this network "
        f"({type(network).__name__}) are not known: they are for the nb201, nats_sss, nb101, "
        "macro, fbnet and vit spaces, not for an uploaded graph")


def feature_maps(network: nn.Module, x: torch.Tensor, taps: list[Tap]) -> list[torch.Tensor]:
    """One forward of `x` (with autograd), keeping each tap's tensor (still on the graph)."""
    seen: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(taps))}

    def keep(index: int, reads_input: bool):
        if reads_input:
            def pre_hook(_module: nn.Module, inputs: tuple) -> None:
                seen[index].append(inputs[0])
            return pre_hook

        def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            seen[index].append(output)
        return hook

    handles = [tap.module.register_forward_pre_hook(keep(i, True)) if tap.reads_input
               else tap.module.register_forward_hook(keep(i, False))
               for i, tap in enumerate(taps)]
    try:
        network(x)
    finally:
        for handle in handles:
            handle.remove()
    for i, tap in enumerate(taps):
        if len(seen[i]) != 1:
            raise FailedPrecondition(f"AZ-NAS: block {tap.name} ran {len(seen[i])} times in one "
                                     "forward, not once")
    return [seen[i][0] for i in range(len(taps))]


def rows(feature: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B*H*W, C); (B, N, C) -> (B*N, C): one row per position, one column per
    channel, as the reference's permute + view."""
    if feature.dim() == 4:
        return feature.permute(0, 2, 3, 1).reshape(-1, feature.shape[1])
    if feature.dim() == 3:
        return feature.reshape(-1, feature.shape[2])
    raise FailedPrecondition(f"AZ-NAS: a block's output has shape {tuple(feature.shape)}, not "
                             "(B, C, H, W) or (B, N, C)")


def expressivity(feature: torch.Tensor) -> float:
    """Entropy of the normalised eigenvalues of the channel covariance over all positions; NaN
    where the covariance is zero (a constant feature map)."""
    f = rows(feature.detach()).double()
    f = f - f.mean(dim=0, keepdim=True)
    sigma = f.T @ f / f.shape[0]
    s = torch.linalg.eigvalsh(sigma)
    p = s / s.sum()
    return float((-p * torch.log(p + ENTROPY_EPS)).sum())


def pair_trainability(g_in: torch.Tensor, g_out: torch.Tensor) -> float:
    """-sigma - 1/(sigma + 1e-6) + 2, sigma the spectral norm of g_in^T g_out / positions, after
    bringing g_in to g_out's grid (PixelUnshuffle by the stride) where the resolution changed."""
    if g_in.dim() == 4 and g_in.shape[2:] != g_out.shape[2:]:
        (hi, wi), (ho, wo) = g_in.shape[2:], g_out.shape[2:]
        stride = hi // ho
        if stride < 1 or hi != ho * stride or wi != wo * stride:
            raise FailedPrecondition(f"AZ-NAS: a block maps {hi}x{wi} to {ho}x{wo}, not a "
                                     "whole-number stride the reference's PixelUnshuffle needs")
        g_in = nn.functional.pixel_unshuffle(g_in, stride)
    if g_in.dim() == 3 and g_in.shape[1] != g_out.shape[1]:
        raise FailedPrecondition("AZ-NAS: a block changes the number of tokens")
    a, b = rows(g_in).double(), rows(g_out).double()
    mat = a.T @ b / b.shape[0]
    sigma = float(torch.linalg.svdvals(mat).max())
    return -sigma - 1.0 / (sigma + SIGMA_EPS) + 2.0


def _reference_init(network: nn.Module) -> None:
    # The rest of AZ-NAS's init_model after the engine's Conv2d/Linear weights: zero biases
    # (BN/GroupNorm affine is (1, 0) in a freshly built network already).
    with torch.no_grad():
        for m in network.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
                m.bias.zero_()


def az_pass(inp: ProxyInput) -> AzStats:
    network = inp.network.train()
    taps, transformer = block_taps(network)
    if inp.settings.init != "default":
        _reference_init(network)
    x, _ = inp.batch()
    gen = _seeded.generator(inp.settings.seed, "az_nas_grad_out")
    try:
        with torch.enable_grad():
            feats = feature_maps(network, x, taps)
            express = tuple(expressivity(f) for f in feats)
            train: list[Optional[float]] = [None] * (len(feats) - 1)
            for k in reversed(range(1, len(feats))):  # last pair first, as the reference
                f_out, f_in = feats[k], feats[k - 1]
                if not (f_out.requires_grad and f_in.requires_grad):
                    raise FailedPrecondition(f"AZ-NAS: blocks {taps[k - 1].name} -> "
                                             f"{taps[k].name} are not on the autograd graph")
                g_out = (torch.bernoulli(torch.full(f_out.shape, 0.5), generator=gen) * 2 - 1
                         ).to(device=f_out.device, dtype=f_out.dtype)
                (g_in,) = torch.autograd.grad(f_out, f_in, g_out, allow_unused=True)
                if g_in is None:  # F_out does not depend on F_in: a zero Jacobian
                    g_in = torch.zeros_like(f_in)
                if g_in.shape == g_out.shape and torch.equal(g_in, g_out):
                    continue  # identity block: None
                train[k - 1] = pair_trainability(g_in.detach(), g_out)
    except torch.OutOfMemoryError:
        raise ResourceExhausted(f"AZ-NAS: out of memory on {inp.device} at batch "
                                f"{x.shape[0]} (a smaller batch_size may fit)") from None
    return AzStats(tuple(t.name for t in taps), transformer, express, tuple(train))


AZ_NAS = SharedPass(
    name="az_nas",
    run=az_pass,
    description="AZ-NAS: one train-mode forward of the calibration batch with every block's "
                "feature map kept, and one vector-Jacobian product per consecutive pair of blocks "
                "with a seeded Rademacher signal; per map the spectral entropy of the channel "
                "covariance, per pair -sigma - 1/sigma + 2",
)

# The protocol of the three proxies read off the pass (`Proxy(..., **PASS_PROTOCOL)`): the
# Gaussian input is the calibration batch of data_kind=synthetic; with data_kind=cifar10 the
# xautodl loader's mean/std, as the reference's real-image mode.
PASS_PROTOCOL = {"needs_data": True, "batch_size": 64, "data_kind": "synthetic",
                 "init": "kaiming", "normalisation": "nb201", "shared_pass": AZ_NAS}


def _finite(name: str, stats: AzStats) -> tuple[float, ...]:
    for tap, value in zip(stats.taps, stats.expressivity):
        if not math.isfinite(value):
            raise NumericalFailure(
                f"{name}: the feature map of {tap} is constant over the batch (its covariance is "
                "zero), so its spectral entropy is undefined (the reference scores -inf)")
    return stats.expressivity


def expressivity_value(stats: AzStats) -> float:
    """The sum of the feature maps' expressivities."""
    return math.fsum(_finite("az_expressivity", stats))


def progressivity_value(stats: AzStats) -> float:
    """The smallest increase of expressivity from one feature map to the next."""
    if stats.transformer:
        raise FailedPrecondition(
            "az_progressivity: AZ-NAS defines no progressivity for transformers (its AutoFormer "
            "search ranks expressivity, trainability and complexity only); for the aggregate ask "
            "az_nas with extra proxies=az_expressivity,az_trainability,az_complexity")
    values = _finite("az_progressivity", stats)
    if len(values) < 2:
        raise FailedPrecondition(f"az_progressivity: needs at least two feature maps, the "
                                 f"network has {len(values)}")
    return min(b - a for a, b in zip(values, values[1:]))


def trainability_value(stats: AzStats) -> float:
    """The mean over consecutive pairs of -sigma - 1/sigma + 2."""
    identity = [f"{a} -> {b}" for a, b, t in zip(stats.taps, stats.taps[1:], stats.trainability)
                if t is None]
    if identity and not stats.transformer:
        raise NumericalFailure(
            f"az_trainability: block {identity[0]} passes the gradient through unchanged (an "
            "identity block), which the reference scores -inf")
    scores = [t for t in stats.trainability if t is not None]
    if not scores:
        raise FailedPrecondition("az_trainability: no pair of consecutive blocks to score (needs "
                                 "two feature maps, and a block that is not the identity)")
    return math.fsum(scores) / len(scores)
