"""ONNX uploads of ordinary networks: untrained torchvision classifiers, exported as a user
exports them, converted and scored by a real server; the conversion's handling of the
initializers an exporter shares."""

from __future__ import annotations

import functools
import io
import math
import os
import sys
import warnings
from types import ModuleType

import grpc
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from edgescore.client.launcher import LocalStack
from edgescore.server.spaces.onnx_to_torch import convert, without_initializer_aliases

RESOLUTION = 32
TORCH_PROXIES = ("synflow", "naswot", "snip", "jacob_cov", "grad_norm")
# Small batches keep a dozen networks within seconds each on a 2-core machine.
PROXY_SETTINGS = {"batch_size": 4, "repeats": 1}
# torchvision builder -> its keyword arguments (weights=None and 10 classes for all).
ZOO = {
    "resnet18": {},
    "mobilenet_v2": {},
    "mobilenet_v3_small": {},
    "squeezenet1_0": {},
    "squeezenet1_1": {},
    "shufflenet_v2_x0_5": {},
    "efficientnet_b0": {},
    "mnasnet0_5": {},
    "regnet_x_400mf": {},
    "regnet_y_400mf": {},
    "googlenet": {"aux_logits": False, "init_weights": True},
    "densenet121": {},
}
# Tens of millions of parameters, or more of the same: minutes on a small machine.
# EDGESCORE_ONNX_ZOO=all adds them.
HEAVY = {"mobilenet_v3_large": {}, "resnext50_32x4d": {}, "efficientnet_v2_s": {},
         "convnext_tiny": {}}
# NASWOT codes ReLU units; these use SiLU or GELU only, and NASWOT says so.
WITHOUT_RELU = {"efficientnet_b0", "efficientnet_v2_s", "convnext_tiny"}
MODELS = {**ZOO, **(HEAVY if os.environ.get("EDGESCORE_ONNX_ZOO") == "all" else {})}


def torchvision_models() -> ModuleType:
    """torchvision.models. PyPI's torchvision cannot register its compiled ops' fake kernels
    against this CPU torch build, and its import fails there; the classification models use
    none of those ops, so the registration is skipped for the import."""
    for name in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
        if getattr(sys.modules[name], "__file__", None) is None:  # the server's stand-in
            del sys.modules[name]
    real = torch.library.register_fake
    torch.library.register_fake = lambda *_a, **_k: (lambda fn: fn)
    try:
        from torchvision import models
    finally:
        torch.library.register_fake = real
    return models


@functools.cache
def network(name: str) -> nn.Module:
    kwargs = {**ZOO, **HEAVY}[name]
    torch.manual_seed(0)
    return getattr(torchvision_models(), name)(weights=None, num_classes=10, **kwargs).eval()


@functools.cache
def exported(name: str, constant_folding: bool = True) -> bytes:
    """As the issue's user exported: the legacy exporter, opset 17, eval mode; a dynamic batch
    axis, since the proxies run batches (shufflenet's channel shuffle would otherwise keep the
    export's batch of 1 in a Reshape)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(network(name), (torch.zeros(1, 3, RESOLUTION, RESOLUTION),), buffer,
                          dynamo=False, opset_version=17, do_constant_folding=constant_folding,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return buffer.getvalue()


def torch_params(name: str) -> int:
    return sum(p.numel() for p in network(name).parameters())


def batchnorm_channels(name: str) -> int:
    return sum(m.num_features for m in network(name).modules()
               if isinstance(m, nn.BatchNorm2d))


def batchnorm_nodes(data: bytes) -> int:
    return sum(n.op_type == "BatchNormalization" for n in onnx.load_from_string(data).graph.node)


@pytest.fixture(scope="module")
def client():
    with LocalStack(agents={}) as stack, stack.client(timeout=600) as c:
        yield c


def score_all(client, uploads: dict[str, bytes]) -> dict[str, object]:
    items = client.score_many(list(uploads.values()), ["params", "flops", *TORCH_PROXIES],
                              space="onnx", proxy_settings=PROXY_SETTINGS, max_in_flight=2)
    names = list(uploads)
    results = {}
    for item in items:
        assert item.ok, (names[item.index], item.error)
        results[names[item.index]] = item.result
    return results


def assert_every_proxy_scored(name: str, result) -> None:
    for proxy in ("params", "flops", *TORCH_PROXIES):
        value = result.proxies[proxy]
        if proxy == "naswot" and name in WITHOUT_RELU:
            assert value.code == grpc.StatusCode.FAILED_PRECONDITION, (name, value)
            assert "no ReLU" in value.message
            continue
        assert value.ok, (name, proxy, value.message)
        assert math.isfinite(value.value), (name, proxy, value.value)


@pytest.mark.slow
def test_untrained_torchvision_classifiers_convert_and_score(client) -> None:
    results = score_all(client, {name: exported(name) for name in MODELS})
    assert len(results) == len(MODELS) >= 12
    for name, result in results.items():
        assert_every_proxy_scored(name, result)
        # Folding a BatchNorm into the conv before it turns its scale and shift (2 per channel)
        # into the conv's bias (1 per channel); a BatchNorm with no conv right before it (after
        # DenseNet's concatenations) stays a node and counts as in torch.
        params, folded = torch_params(name), torch_params(name) - batchnorm_channels(name)
        assert folded <= result.proxies["params"].value <= params, name
        if not batchnorm_nodes(exported(name)):
            assert result.proxies["params"].value == folded, name


@pytest.mark.slow
def test_an_export_without_constant_folding_keeps_batchnorm_and_torchs_parameter_count(
        client) -> None:
    name = "mobilenet_v3_small"
    data = exported(name, constant_folding=False)
    assert batchnorm_nodes(data) == sum(isinstance(m, nn.BatchNorm2d)
                                        for m in network(name).modules())
    result = score_all(client, {name: data})[name]
    assert_every_proxy_scored(name, result)
    assert result.proxies["params"].value == torch_params(name)
    # The same network folded: no normalization left, and the gradient-based proxies see a
    # network whose gradients all but vanish.
    folded = score_all(client, {name: exported(name)})[name]
    assert folded.proxies["snip"].value < 1e-3 * result.proxies["snip"].value


# ---- the shared initializers, in process ------------------------------------------------------

def _conv_net_sharing_a_bias(output_alias: bool = False) -> onnx.ModelProto:
    """Two convs with equal zero biases stored once: the second reads it through an Identity,
    as the legacy exporter writes it (`output_alias`: the alias is also a graph output)."""
    init = [numpy_helper.from_array(np.full(shape, value, np.float32), name) for name, shape, value
            in (("w1", (4, 3, 3, 3), 0.1), ("w2", (4, 4, 1, 1), 0.2), ("b", (4,), 0.0),
                ("dw", (5, 4), 0.3))]
    nodes = [helper.make_node("Identity", ["b"], ["b_alias"]),
             helper.make_node("Conv", ["x", "w1", "b"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["c1", "w2", "b_alias"], ["c2"]),
             helper.make_node("GlobalAveragePool", ["c2"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "dw"], ["y"], transB=1)]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])]
    if output_alias:
        outputs.append(helper.make_tensor_value_info("b_alias", TensorProto.FLOAT, [4]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3, 8, 8])], outputs, initializer=init)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_every_reader_of_a_shared_initializer_reads_it_by_its_own_name() -> None:
    model = _conv_net_sharing_a_bias()
    fixed = without_initializer_aliases(model)
    assert [n.op_type for n in fixed.graph.node].count("Identity") == 0
    assert list(fixed.graph.node[1].input) == ["c1", "w2", "b"]
    assert len(model.graph.node) == 6  # the upload itself is left as it was
    onnx.checker.check_model(fixed)
    x = torch.ones(2, 3, 8, 8)
    assert convert(model)(x).shape == (2, 5)
    # Each conv got a copy: changing one leaves the other's bias as it was.
    convs = [m for m in convert(model).modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        convs[0].bias.fill_(1.0)
    assert not convs[1].bias.detach().any()


def test_an_alias_that_is_also_a_graph_output_keeps_its_identity() -> None:
    fixed = without_initializer_aliases(_conv_net_sharing_a_bias(output_alias=True))
    assert [n.op_type for n in fixed.graph.node].count("Identity") == 1
    assert list(fixed.graph.node[2].input) == ["c1", "w2", "b"]
    onnx.checker.check_model(fixed)


def test_a_graph_without_aliases_is_converted_as_uploaded() -> None:
    model = _conv_net_sharing_a_bias()
    model.graph.node[2].input[2] = "b"
    del model.graph.node[0]
    assert without_initializer_aliases(model) is model


def test_a_worker_converting_upload_after_upload_keeps_a_bounded_fx_source_cache() -> None:
    import torch.fx.graph_module as fx_module

    from edgescore.server.compute import units
    from edgescore.server.proxies.base import SettingsOverride
    from edgescore.server.spaces.onnx_to_torch import FX_SOURCES_KEPT

    calls = (("synflow", SettingsOverride(batch_size=2, repeats=1)),)
    outcomes = []
    for i in range(FX_SOURCES_KEPT + 8):
        # Each upload distinct, as a search's are (another bias value, another sha256).
        model = _conv_net_sharing_a_bias()
        model.graph.initializer[1].CopyFrom(numpy_helper.from_array(
            np.full((4, 4, 1, 1), 0.2 + i / 1000, np.float32), "w2"))
        unit = units.ProxyUnit(units.ArchRef("onnx", {"model": model.SerializeToString(),
                                                      "input_name": ""}), calls)
        units.execute(unit, outcomes.append, lambda: None)
    assert all(o.error is None for o in outcomes) and len(outcomes) == FX_SOURCES_KEPT + 8
    # The newest conversions' sources, plus the copies the last unit's proxies took.
    assert len(fx_module._loader.eval_cache) <= FX_SOURCES_KEPT + 4
