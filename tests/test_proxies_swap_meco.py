"""swap, swap_reg, meco and num_layers: hand-checkable pieces on tiny inputs, then one arch of
every space through the engine (values where defined, a per-item failure where not)."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import ToySpace
from torch import nn

from edgescore.server.errors import FailedPrecondition, InvalidArgument
from edgescore.server.export.onnx_export import export_onnx
from edgescore.server.proxies import _swap, meco, num_layers, swap_reg
from edgescore.server.proxies.base import SettingsOverride
from edgescore.server.proxies.engine import compute_proxies
from edgescore.server.proxies.registry import get_proxy
from edgescore.server.spaces import fbnet, macro, nats_sss, nb101, nb201, onnx_model, vit
from edgescore.server.spaces.base import ParsedArch

NEW = ["meco", "num_layers", "swap", "swap_reg"]
NB201_ARCH = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
              "+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|")
# Small, fast settings: the protocol is the same, only shorter.
QUICK = {"swap": SettingsOverride(batch_size=4, extra={"inits": "1"}),
         "swap_reg": SettingsOverride(batch_size=4, extra={"inits": "1"}),
         "meco": SettingsOverride(), "num_layers": SettingsOverride()}


def small_convnet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=True), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


def toy(factory, name: str, resolution: int = 8, **override):
    arch = ParsedArch(space="toy", canonical="toy", num_classes=10, input_resolution=resolution)
    (out,) = compute_proxies(ToySpace(factory), arch, [(name, SettingsOverride(**override))])
    return out


def test_metadata():
    by_name = {n: get_proxy(n) for n in NEW}
    assert by_name["swap"].batch_size == 16 and by_name["swap"].init == "normal"
    assert by_name["swap"].extra_choices["inits"][0] == "32"
    assert by_name["meco"].batch_size == 1 and by_name["meco"].extra_choices["variant"][0] == "meco"
    assert not by_name["num_layers"].needs_data and not by_name["num_layers"].mutates_network
    assert all(p.reference and p.transform == "none" for p in by_name.values())


def test_pack_counts_distinct_columns():
    gen = torch.Generator().manual_seed(0)
    for samples in (1, 16, 24, 25, 49, 70):
        codes = torch.rand((samples, 300), generator=gen) > 0.5
        codes[:, 150:] = codes[:, :150]  # every pattern at least twice
        expected = torch.unique(codes.T.to(torch.uint8), dim=0).shape[0]
        assert torch.unique(_swap._pack(codes), dim=0).shape[0] == expected


def test_swap_count_by_hand():
    # Identity conv, then ReLU: neuron j is on for sample i iff x[i, j] > 0.
    net = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), nn.ReLU())
    with torch.no_grad():
        net[0].weight.fill_(1.0)
    x = torch.tensor([[1.0, -1.0, 2.0, 0.0], [1.0, 1.0, -2.0, 0.0]]).view(2, 1, 2, 2)
    # columns (on/off per sample): (1,1), (0,1), (1,0), (0,0): four distinct patterns
    assert _swap.swap_count(net, x) == 4
    x[1] = x[0]  # now (1,1), (0,0), (1,1), (0,0)
    assert _swap.swap_count(net, x) == 2


def test_swap_ignores_relus_off_feature_maps():
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 10))
    with pytest.raises(FailedPrecondition, match="no nn.ReLU ran on a 4-D"):
        _swap.swap_count(mlp, torch.randn(4, 3, 2, 2))


def test_swap_on_toy_and_seeded():
    a = toy(small_convnet, "swap", batch_size=8, extra={"inits": "4"})
    b = toy(small_convnet, "swap", batch_size=8, extra={"inits": "4"})
    assert a.error is None and a.value == b.value
    # at most 2^8 patterns over 8 samples, at least one
    assert 1 <= a.value <= 256


def test_swap_reg_factor_and_settings():
    assert swap_reg.regular_factor(10.0, 10.0, 5.0) == 1.0
    assert math.isclose(swap_reg.regular_factor(12.0, 10.0, 4.0), math.exp(-1.0))
    plain = toy(small_convnet, "swap", batch_size=8, extra={"inits": "1"})
    kilo = _swap.kilo_params(small_convnet())
    reg = toy(small_convnet, "swap_reg", batch_size=8,
              extra={"inits": "1", "mu": str(kilo + 1), "sigma": "2"})
    assert math.isclose(reg.value, plain.value * math.exp(-0.5), rel_tol=1e-12)
    bad = toy(small_convnet, "swap_reg", extra={"sigma": "0"})
    assert isinstance(bad.error, InvalidArgument)


def test_min_corr_eigenvalue_by_hand():
    # Two uncorrelated rows: correlation matrix I, λ_min 1.
    rows = torch.tensor([[1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0]])
    assert math.isclose(meco.min_corr_eigenvalue(rows), 1.0, abs_tol=1e-12)
    # Perfectly correlated: [[1, 1], [1, 1]], λ_min 0; a constant row is zeroed, λ_min 0 too.
    assert abs(meco.min_corr_eigenvalue(torch.stack([rows[0], 2 * rows[0]]))) < 1e-12
    assert abs(meco.min_corr_eigenvalue(torch.stack([rows[0], torch.ones(4)]))) < 1e-12


def test_meco_variants_on_toy():
    a = toy(small_convnet, "meco")
    opt = toy(small_convnet, "meco", extra={"variant": "meco_opt"})
    assert a.error is None and opt.error is None and a.value > 0
    # 8 channels: meco_opt draws all 8 rows, so its value is meco's
    assert math.isclose(a.value, opt.value, rel_tol=1e-9)


def test_num_layers_counts():
    net = small_convnet()  # conv w+b, bn 2, conv w, bn 2, linear w+b
    assert num_layers.count_layers(net) == 9
    assert num_layers.count_layers(net, "modules") == 5
    net[3].weight.requires_grad_(False)
    assert num_layers.count_layers(net) == 8


def test_nb201_all_four():
    arch = nb201.SPACE.parse(NB201_ARCH)
    outs = {o.name: o for o in compute_proxies(nb201.SPACE, arch, list(QUICK.items()))}
    assert all(o.error is None for o in outs.values()), {n: o.error for n, o in outs.items()}
    # stem 3 + 2 reductions x 7 + head 4 + 15 cells x 4 conv edges x 3 tensors
    assert outs["num_layers"].value == 3 + 14 + 4 + 15 * 4 * 3
    assert outs["swap_reg"].value <= outs["swap"].value
    assert outs["meco"].value > 0


def _onnx_arch() -> ParsedArch:
    data = export_onnx(small_convnet(), (1, 3, 8, 8))
    return onnx_model.SPACE.parse({"model": data})


@pytest.mark.parametrize("space, spec", [
    (nb101.SPACE, {"adjacency": [0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0],
                   "ops": ["input", "conv1x1-bn-relu", "maxpool3x3", "output"]}),
    (nats_sss.SPACE, "8:8:8:8:8"),
    (macro.SPACE, {"stem_width": 8, "stages": [
        {"kernel": 3, "expansion": 1, "width": 8, "depth": 1, "stride": 1}]}),
    (fbnet.SPACE, " ".join(["k3_e1_g2"] + ["skip"] * 21)),
])
def test_other_cnn_spaces(space, spec):
    arch = space.parse(spec, input_resolution=32) if space is macro.SPACE else space.parse(spec)
    outs = compute_proxies(space, arch, list(QUICK.items()))
    assert all(o.error is None and o.value is not None for o in outs), [o.error for o in outs]


def test_onnx_upload():
    outs = compute_proxies(onnx_model.SPACE, _onnx_arch(), list(QUICK.items()))
    assert all(o.error is None for o in outs), [o.error for o in outs]


def test_vit_swap_fails_clearly_others_run():
    arch = vit.SPACE.parse({"embed_dim": 40, "depth": 1, "num_heads": [4], "mlp_ratio": [2.0],
                            "patch_size": 8}, input_resolution=32)
    outs = {o.name: o for o in compute_proxies(vit.SPACE, arch, list(QUICK.items()))}
    for name in ("swap", "swap_reg"):
        assert isinstance(outs[name].error, FailedPrecondition)
        assert outs[name].error.message.startswith(name) and "GELU" in outs[name].error.message
    assert outs["meco"].error is None and outs["num_layers"].error is None
