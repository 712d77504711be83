"""ONNX export of NB201 networks: valid, equal to torch under onnxruntime, and reproducible."""

from __future__ import annotations

import copy
from collections import Counter

import onnx
import pytest
import torch

from edgescore.server.errors import FailedPrecondition
from edgescore.server.export import parity
from edgescore.server.export.onnx_export import export_onnx
from edgescore.server.export.result import ParityReport
from edgescore.server.spaces.nb201 import SPACE
from edgescore.v1 import common_pb2

SHAPE = (1, 3, 32, 32)
NONE_HEAVY = "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|none~0|none~1|skip_connect~2|"
ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|",
    NONE_HEAVY,
    "|none~0|+|skip_connect~0|nor_conv_3x3~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|",
    "|none~0|+|none~0|nor_conv_1x1~1|+|none~0|none~1|avg_pool_3x3~2|",  # degenerate cell
]


def onnx_parity(data: bytes, network: torch.nn.Module) -> ParityReport:
    """The exporter's fp32 parity check of an ONNX export on one seeded input."""
    x = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0)).numpy()
    return parity.check(parity.torch_outputs(network, [x]), parity.onnx_outputs(data, [x]),
                        common_pb2.FP32, "onnx")


def op_types(onnx_bytes: bytes) -> Counter[str]:
    return Counter(node.op_type for node in onnx.load_from_string(onnx_bytes).graph.node)


@pytest.mark.parametrize("spec", ARCHS)
def test_export_is_valid_and_matches_torch(spec: str) -> None:
    torch.manual_seed(0)
    network = SPACE.build_exportable(SPACE.parse(spec))
    network.train()
    data = export_onnx(network, SHAPE)
    assert network.training  # the caller's mode is restored
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["input"]
    assert onnx_parity(data, network).max_abs_diff < 1e-4


def test_same_weights_give_identical_bytes() -> None:
    torch.manual_seed(1)
    network = SPACE.build_exportable(SPACE.parse(ARCHS[0]))
    first = export_onnx(network, SHAPE)
    assert export_onnx(copy.deepcopy(network), SHAPE) == first
    with torch.no_grad():
        network.classifier.bias.add_(1.0)
    assert export_onnx(network, SHAPE) != first


def test_pruned_export_has_no_multiply_by_zero() -> None:
    arch = SPACE.parse(NONE_HEAVY)
    full = SPACE.build(arch)
    full_ops = op_types(export_onnx(full, SHAPE))
    pruned_ops = op_types(export_onnx(SPACE.build_exportable(arch, full), SHAPE))
    assert full_ops["Mul"] > 0  # `none` edges export as x * 0 in the reference network
    assert pruned_ops["Mul"] == 0
    assert pruned_ops["Conv"] == full_ops["Conv"] and pruned_ops["Add"] < full_ops["Add"]


def test_parity_failure_is_reported() -> None:
    network = SPACE.build_exportable(SPACE.parse(ARCHS[0]))
    data = export_onnx(network, SHAPE, input_name="image")
    with torch.no_grad():
        network.classifier.weight.mul_(3.0)
    with pytest.raises(FailedPrecondition, match="parity failed"):
        onnx_parity(data, network)


def test_concurrent_exports_of_different_archs_succeed_and_match_sequential() -> None:
    # torch.onnx.export keeps module-global state, and builds draw from the global RNG: the
    # server's threads export one at a time and seed under one lock.
    from concurrent.futures import ThreadPoolExecutor

    from edgescore.server.export.exporter import Exporter
    from edgescore.v1 import common_pb2

    specs = ["|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|avg_pool_3x3~1|none~2|",
             "|nor_conv_1x1~0|+|skip_connect~0|nor_conv_3x3~1|+|none~0|none~1|nor_conv_3x3~2|",
             "|avg_pool_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|nor_conv_1x1~0|none~1|none~2|",
             "|skip_connect~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|avg_pool_3x3~0|none~1|none~2|"]
    exporter = Exporter()

    def export(spec: str) -> bytes:
        return exporter.export(SPACE.parse(spec), common_pb2.ONNX, common_pb2.FP32, 1).data

    sequential = [export(s) for s in specs]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(2):
            assert list(pool.map(export, specs)) == sequential
