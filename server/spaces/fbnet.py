"""FBNet space (HW-NAS-Bench / HELP): the CIFAR-100 network of 22 layer ops
(edgescore.grammar.fbnet parses the spec and holds the channel plan).

What the reference builds (RICE-EIC/HW-NAS-Bench, `hw_nas_bench_api/fbnet_models/model_infer.py`,
`FBNet_Infer` with `dataset="cifar100"`, `num_classes=100`; its cost tables in
`hw_nas_bench_api.py` (`fbnet_get_metrics`) walk the same plan; HELP (HayeonLee/HELP) uses the
same 22 op ids, `data/fbnet/metainfo.pt`, and encodes them in `utils.arch_enc`):

  stem      3x3 conv 3 -> 16, stride 1, padding 1, no bias + BN + ReLU (`ConvNorm`)
  layers    22 ops in 7 stages of 1, 4, 4, 4, 4, 4, 1 layers with 16, 24, 32, 64, 112, 184, 352
            output channels; a stage's first layer has the stage's stride (1, 1, 2, 2, 1, 2, 1)
            and reads the previous stage's width (the first stage: the stem's 16), the others
            are stride 1 at the stage's width. 32x32 input: 32, 32, 16, 8, 8, 4, 4 pixels.
  MBConv    (`ConvBlock`, ops k{3,5}_e{1,3,6}[_g2]), hidden = c_in * e, no biases:
            1x1 conv c_in -> hidden (groups g) + BN + ReLU; channel shuffle of g groups when
            g = 2 (view as (g, hidden / g), transpose, flatten); kxk depthwise conv with the
            layer's stride, padding k // 2 (the reference's ceil((k - s) / 2) is k // 2 for
            k = 3, 5 and s = 1, 2) + BN + ReLU; 1x1 conv hidden -> c_out (groups g) + BN, no
            activation; the input is added when stride is 1 and c_in == c_out. The 1x1 expand
            conv is there also at e = 1 (unlike MobileNetV2).
  skip      (`Skip`) the identity when stride is 1 and c_in == c_out, else 1x1 conv c_in ->
            c_out with the stride, no bias + BN + ReLU: in this plan, the first layer of every
            stage but the first (layers 1, 5, 9, 13, 17, 21, counted from 0).
  head      1x1 conv 352 -> 1504, no bias + BN + ReLU (`ConvNorm`), global average pooling,
            linear 1504 -> classes (with bias); no dropout.

Deviations, none of which changes a shape, a parameter or a MAC:
  - ReLUs are not in-place and the residual is `x + body(x)`, not `+=` (hooks and autograd of
    the proxies see every activation).
  - Weights are PyTorch's defaults (what every space here builds; the proxies' `init` setting
    picks another scheme), not the reference's `init_params` (Kaiming-normal fan-out convs,
    N(0, 0.001) linear, zero biases), which is a training recipe.
  - The channel shuffle is written as unflatten / transpose / flatten rather than `view` with
    the batch size read from the tensor, so the ONNX export keeps no batch constant.
  - Only the CIFAR-100 network: the reference's ImageNet variant (stem stride 2, first
    stage stride 2, head 1984, 224 px) is not built. Other class counts and resolutions change
    the classifier and the feature-map sizes only.
Module names are readable rather than the reference's (`layers.3.depthwise.conv` for its
`cells.3.conv2`); they show in hooks, logs and ONNX node names.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from edgescore.grammar import fbnet
from edgescore.grammar.base import ParsedArch
from edgescore.grammar.fbnet import (
    BLOCK_OPS,
    HEAD_CHANNELS,
    LAYERS,
    SKIP,
    STEM_CHANNELS,
    STEM_STRIDE,
    Layer,
    Payload,
)
from edgescore.server.spaces.base import SingleNetworkSpace

NETWORK_VARIANTS = ("default",)


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1,
            act: bool = True) -> nn.Sequential:
    """Conv (no bias, padding kernel // 2) + BN, then ReLU when `act`."""
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        conv=nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        bn=nn.BatchNorm2d(c_out),
    )
    if act:
        layers["act"] = nn.ReLU()
    return nn.Sequential(layers)


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: channels read as (groups, C / groups), transposed."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        return x.unflatten(1, (self.groups, channels // self.groups)).transpose(1, 2).flatten(1, 2)


class MBConv(nn.Module):
    """HW-NAS-Bench's ConvBlock: 1x1 expand (grouped), shuffle, depthwise, 1x1 project."""

    def __init__(self, c_in: int, c_out: int, stride: int, kernel: int, expansion: int,
                 groups: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        layers: OrderedDict[str, nn.Module] = OrderedDict(expand=conv_bn(c_in, hidden, 1,
                                                                         groups=groups))
        if groups > 1:
            layers["shuffle"] = ChannelShuffle(groups)
        layers["depthwise"] = conv_bn(hidden, hidden, kernel, stride, groups=hidden)
        layers["project"] = conv_bn(hidden, c_out, 1, groups=groups, act=False)
        self.body = nn.Sequential(layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


def make_layer(op: str, layer: Layer) -> nn.Module:
    """Layer `layer`'s module for `op` (a name of edgescore.grammar.fbnet.OPS)."""
    if op == SKIP:
        if layer.identity_skip:
            return nn.Identity()
        return conv_bn(layer.c_in, layer.c_out, 1, layer.stride)
    block = BLOCK_OPS[op]
    return MBConv(layer.c_in, layer.c_out, layer.stride, block.kernel, block.expansion,
                  block.groups)


class FbnetNetwork(nn.Module):
    """Stem, the 22 searchable layers (`layers.0` .. `layers.21`), head, pool, classifier."""

    def __init__(self, ops: Payload, num_classes: int) -> None:
        super().__init__()
        self.stem = conv_bn(3, STEM_CHANNELS, 3, STEM_STRIDE)
        self.layers = nn.Sequential(*(make_layer(op, layer) for op, layer in zip(ops, LAYERS)))
        self.head = conv_bn(LAYERS[-1].c_out, HEAD_CHANNELS, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(HEAD_CHANNELS, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.layers(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(x), 1))


class FbnetSpace(SingleNetworkSpace):
    """HW-NAS-Bench's FBNet space: 22 layers of 9 ops, the CIFAR-100 network."""

    network_variants = NETWORK_VARIANTS

    network_type = FbnetNetwork

    def make_network(self, arch: ParsedArch) -> nn.Module:
        return FbnetNetwork(arch.payload, arch.num_classes)


SPACE = FbnetSpace(fbnet.GRAMMAR)
