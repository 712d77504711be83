"""Architecture features for the latency predictor (FBNet space).

HELP (HayeonLee/HELP, `utils.arch_enc`) encodes an FBNet arch as 6 numbers per layer: kernel 3 or
5 (one-hot, 2), then the op's expansion/group kind e1, e1_g2, e3 or e6 (one-hot, 4), all six
zero for `skip`; 22 layers give its 132 inputs. Those are the `l<i>_*` features here, in HELP's
order (`help_encoding`), with op counts, the layers that are an identity (a `skip` where the
shape stays: no work at all) and the network's MACs and parameters.

The channel plan is fixed, so each layer's shape does not depend on the other layers' ops: a
network's MACs and parameters are the fixed part's (stem, head, classifier) plus one entry per
layer from a table of every (layer, op) pair, each layer built alone at its input shape. The
table is made once per class count and resolution, on the meta device: shapes are all it needs,
and a real build would draw weights from the global RNG, which this (run from the fleet's
threads when a measurement arrives) would do in the middle of a proxy computation's seeded
build. `tests/test_space_fbnet.py` checks the sums against a direct count of the whole network.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Union

import torch
from torch import nn

from edgescore.grammar.fbnet import BLOCK_OPS, LAYERS, NUM_LAYERS, OPS, SKIP
from edgescore.server.proxies.flops import count_macs
from edgescore.server.spaces.base import ParsedArch
from edgescore.server.spaces.fbnet import SPACE, make_layer

# HELP's 6 slots per layer: kernel one-hot, then the kind of the op (id % 4 in its order).
KERNEL_SLOTS = ("k3", "k5")
KIND_SLOTS = ("e1", "e1_g2", "e3", "e6")
Cost = tuple[int, int]  # (MACs, parameters)


def _kind(op: str) -> str:
    return op.split("_", 1)[1]  # "k5_e1_g2" -> "e1_g2"


def _cost(module: nn.Module, input_shape: tuple[int, int, int]) -> Cost:
    params = sum(p.numel() for p in module.parameters())
    return count_macs(module, input_shape, device="meta"), params


def _layer_inputs(resolution: int) -> list[tuple[int, int, int]]:
    """(C, H, W) of each layer's input: the meta-device shapes of a forward through the plan."""
    shapes, x = [], torch.empty(1, 3, resolution, resolution, device="meta")
    with torch.device("meta"):
        network = SPACE.build(SPACE.parse(" ".join([SKIP] * NUM_LAYERS))).eval()
        x = network.stem(x)
        for layer in network.layers:
            shapes.append(tuple(x.shape[1:]))
            x = layer(x)
    return shapes


@lru_cache(maxsize=8)
def cost_table(num_classes: int, resolution: int) -> dict[object, Cost]:
    """(MACs, params) of the fixed part ("base": stem, head, pool, classifier) and of each
    (layer index, op) pair, from the real builder on the meta device."""
    inputs = _layer_inputs(resolution)
    table: dict[object, Cost] = {}
    alike: dict[tuple, Cost] = {}  # layers of one shape (a stage's 2nd to 4th) cost alike
    with torch.device("meta"):
        for layer, shape in zip(LAYERS, inputs):
            for op in OPS:
                key = (op, layer.c_in, layer.c_out, layer.stride, shape)
                if key not in alike:
                    alike[key] = _cost(make_layer(op, layer), shape)
                table[layer.index, op] = alike[key]
        all_skip = SPACE.parse(" ".join([SKIP] * NUM_LAYERS), num_classes, resolution)
        total = _cost(SPACE.build(all_skip), all_skip.input_shape)
    skips = [table[layer.index, SKIP] for layer in LAYERS]
    table["base"] = (total[0] - sum(m for m, _ in skips), total[1] - sum(p for _, p in skips))
    return table


def help_encoding(ops: tuple[str, ...]) -> list[float]:
    """HELP's 132-number FBNet encoding (utils.arch_enc) of 22 op names."""
    encoding: list[float] = []
    for op in ops:
        slots = [0.0] * (len(KERNEL_SLOTS) + len(KIND_SLOTS))
        if op != SKIP:
            slots[KERNEL_SLOTS.index(f"k{BLOCK_OPS[op].kernel}")] = 1.0
            slots[len(KERNEL_SLOTS) + KIND_SLOTS.index(_kind(op))] = 1.0
        encoding.extend(slots)
    return encoding


def feature_names() -> list[str]:
    """The names of `help_encoding`'s numbers, in its order (`l07_k5`: layer 7 has kernel 5)."""
    return [f"l{i:02d}_{slot}" for i in range(NUM_LAYERS) for slot in (*KERNEL_SLOTS,
                                                                        *KIND_SLOTS)]


def fbnet_features(arch: Union[str, ParsedArch]) -> dict[str, float]:
    """Features of one FBNet arch (spec or parsed): HELP's per-layer one-hot encoding, op
    counts, identity layers, MACs (M) and parameters (M) of the network."""
    if not isinstance(arch, ParsedArch):
        arch = SPACE.parse(arch)
    return dict(_features(arch.canonical, arch.num_classes, arch.input_resolution))


@lru_cache(maxsize=65536)
def _features(canonical: str, num_classes: int, resolution: int) -> tuple[tuple[str, float], ...]:
    ops = SPACE.parse(canonical).payload
    table = cost_table(num_classes, resolution)
    features = dict(zip(feature_names(), help_encoding(ops)))
    for op in OPS:
        features[f"n_{op}"] = float(ops.count(op))
    identity = sum(op == SKIP and layer.identity_skip for op, layer in zip(ops, LAYERS))
    macs = table["base"][0] + sum(table[i, op][0] for i, op in enumerate(ops))
    params = table["base"][1] + sum(table[i, op][1] for i, op in enumerate(ops))
    features.update(identity_layers=float(identity), macs_m=macs / 1e6, params_m=params / 1e6)
    return tuple(features.items())
