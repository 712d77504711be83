"""MobileNet-style macro space: the network of a spec (edgescore.grammar.macro parses it).

A stem, stages of inverted-residual blocks, a head:

  stem      conv3x3 stride 2 (no bias) + BN + ReLU6
  stage     `depth` inverted-residual blocks; the first has the stage's stride, the rest stride 1:
            1x1 expand conv + BN + ReLU6 (left out when expansion == 1, as in MobileNetV2),
            kxk depthwise conv + BN + ReLU6, optional squeeze-excitation (squeeze to
            make_divisible(hidden / 4, 8), ReLU, a sigmoid gate: see SqueezeExcitation), 1x1
            project conv + BN (linear bottleneck); a residual connection when stride is 1 and
            channels stay the same.
  head      1x1 conv to head_width + BN + ReLU6, global average pool, linear classifier (no dropout:
            inference and proxies never use it).

ReLU6 everywhere (MobileNetV2 / ProxylessNAS) rather than MobileNetV3's h-swish, so that the
MobileNetV2 spec (edgescore.grammar.macro.MOBILENET_V2) reproduces torchvision's mobilenet_v2
(3,504,872 parameters, ~300 M MACs at 224x224) layer for layer. Hidden channels are
round(c_in * expansion), as torchvision computes them.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from edgescore.grammar import macro
from edgescore.grammar.base import ParsedArch
from edgescore.grammar.macro import MacroArch
from edgescore.server.spaces.base import SingleNetworkSpace

NETWORK_VARIANTS = ("default",)


def make_divisible(value: float, divisor: int = 8) -> int:
    """MobileNet's channel rounding: nearest multiple of `divisor`, never 10% below `value`."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1,
            act: bool = True) -> nn.Sequential:
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        conv=nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        bn=nn.BatchNorm2d(c_out),
    )
    if act:
        layers["act"] = nn.ReLU6()
    return nn.Sequential(layers)


class SqueezeExcitation(nn.Module):
    """Squeeze-excitation: channel gates from the pooled features (reduction 4), with the
    sigmoid gate of SE-Net / EfficientNet rather than MobileNetV3's hard sigmoid: PyTorch has no
    second derivative of hardsigmoid, and GraSP needs one."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        squeezed = make_divisible(channels / 4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(squeezed, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, kernel: int, expansion: float, stride: int,
                 squeeze_excitation: bool) -> None:
        super().__init__()
        hidden = int(round(c_in * expansion))
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        if expansion != 1:
            layers["expand"] = conv_bn(c_in, hidden, 1)
        layers["depthwise"] = conv_bn(hidden, hidden, kernel, stride, groups=hidden)
        if squeeze_excitation:
            layers["se"] = SqueezeExcitation(hidden)
        layers["project"] = conv_bn(hidden, c_out, 1, act=False)
        self.body = nn.Sequential(layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


class MacroNetwork(nn.Module):
    """Module names read `stages.2.1.depthwise.conv`: stage 2, its second block."""

    def __init__(self, arch: MacroArch, num_classes: int) -> None:
        super().__init__()
        self.stem = conv_bn(3, arch.stem_width, 3, stride=2)
        self.stages = nn.Sequential()
        channels = arch.stem_width
        for stage in arch.stages:
            blocks = nn.Sequential()
            for index in range(stage.depth):
                blocks.append(InvertedResidual(
                    channels, stage.width, stage.kernel, stage.expansion,
                    stage.stride if index == 0 else 1, stage.squeeze_excitation,
                ))
                channels = stage.width
            self.stages.append(blocks)
        self.head = conv_bn(channels, arch.head_width, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(arch.head_width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.stages(self.stem(x)))
        return self.classifier(torch.flatten(self.pool(x), 1))


class MacroSpace(SingleNetworkSpace):
    """MobileNet-style inverted-residual networks (ImageNet defaults)."""

    network_variants = NETWORK_VARIANTS

    network_type = MacroNetwork

    def make_network(self, arch: ParsedArch) -> nn.Module:
        return MacroNetwork(arch.payload, arch.num_classes)


SPACE = MacroSpace(macro.GRAMMAR)
