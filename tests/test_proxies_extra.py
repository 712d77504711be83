"""zen, ntk_cond, linear_regions, gradsign and zico, checked on networks small enough to do by
hand, then through the engine on NB201."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pytest
import torch
from conftest import ToySpace
from torch import nn

from edgescore.server.errors import FailedPrecondition, InvalidArgument, NumericalFailure
from edgescore.server.proxies import data, gradsign, linear_regions, ntk_cond, zen, zico
from edgescore.server.proxies.base import SettingsOverride
from edgescore.server.proxies.engine import compute_proxies
from edgescore.server.proxies.registry import get_proxy
from edgescore.server.spaces import nb201
from edgescore.server.spaces.base import ParsedArch

EXTRA = ["gradsign", "linear_regions", "ntk_cond", "zen", "zico"]
NB201_ARCH = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
              "+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|")
DEAD_ARCH = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def toy_arch(resolution: int = 4) -> ParsedArch:
    return ParsedArch(space="toy", canonical="toy", num_classes=10, input_resolution=resolution)


def one(factory: Callable[[], nn.Module], name: str, arch: ParsedArch | None = None, **override):
    (out,) = compute_proxies(ToySpace(factory), arch or toy_arch(),
                             [(name, SettingsOverride(**override))])
    return out


def small_convnet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


def zero_linear(inputs: int = 2, outputs: int = 2) -> nn.Module:
    lin = nn.Linear(inputs, outputs, bias=False)
    with torch.no_grad():
        lin.weight.zero_()
    return nn.Sequential(nn.Flatten(), lin)


def test_metadata():
    by_name = {n: get_proxy(n) for n in EXTRA}
    assert by_name["ntk_cond"].transform == "negate"
    assert {n for n, p in by_name.items() if p.needs_labels} == {"gradsign", "zico"}
    assert by_name["zen"].data_kind == "synthetic" and by_name["zen"].init == "normal"
    assert by_name["ntk_cond"].batch_size == 72 and by_name["ntk_cond"].repeats == 3
    assert all(p.mutates_network and p.reference for p in by_name.values())


# --- zen ----------------------------------------------------------------------------------------

def test_zen_bn_term_from_running_var():
    net = nn.Sequential(nn.BatchNorm2d(2), nn.BatchNorm2d(1), nn.BatchNorm1d(3))
    with torch.no_grad():
        net[0].running_var.copy_(torch.tensor([1.0, 4.0]))
        net[1].running_var.fill_(9.0)
        net[2].running_var.fill_(100.0)  # BatchNorm1d: not counted, as the reference
    assert zen.bn_log_scale(net) == pytest.approx(math.log(math.sqrt(2.5)) + math.log(3.0))


def test_zen_score_by_hand():
    def bn_net():
        return nn.Sequential(nn.BatchNorm2d(1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(1, 2))

    x = torch.tensor([[1.0, 2.0], [4.0, -1.0]]).view(2, 1, 1, 2)
    noise = torch.tensor([[1.0, -1.0], [0.5, 2.0]]).view(2, 1, 1, 2)
    gamma = 0.5
    xs, ms = x.numpy().ravel().astype(float), (x + gamma * noise).numpy().ravel().astype(float)

    def train_bn(v):  # BN in train mode: biased batch variance, eps 1e-5, gamma 1, beta 0
        return (v - v.mean()) / np.sqrt(v.var() + 1e-5)

    diff = np.abs(train_bn(xs) - train_bn(ms)).reshape(2, 2).sum(1).mean()
    # running_var: 1 -> 0.9 + 0.1 var_unbiased(x) -> 0.9 (...) + 0.1 var_unbiased(x + g eps)
    rv = 0.9 * (0.9 + 0.1 * xs.var(ddof=1)) + 0.1 * ms.var(ddof=1)
    expected = math.log(diff) + math.log(math.sqrt(rv))
    assert zen.zen_score(bn_net(), x, noise, gamma) == pytest.approx(expected, rel=1e-6)


def test_zen_failures_and_gamma():
    class Zero(nn.Module):
        def forward(self, x):
            return x * 0.0

    def dead():
        return nn.Sequential(nn.Conv2d(3, 4, 1), Zero(), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    out = one(dead, "zen", batch_size=4)
    assert isinstance(out.error, NumericalFailure) and "identical" in out.error.message
    out = one(lambda: nn.Sequential(nn.Flatten(), nn.Linear(48, 2)), "zen", batch_size=4)
    assert isinstance(out.error, FailedPrecondition)
    bad = one(small_convnet, "zen", batch_size=4, extra={"mixup_gamma": "-1"})
    assert isinstance(bad.error, InvalidArgument)
    a = one(small_convnet, "zen", batch_size=4).value
    b = one(small_convnet, "zen", batch_size=4, extra={"mixup_gamma": "0.1"}).value
    assert math.isfinite(a) and math.isfinite(b) and a != b


# --- ntk_cond -----------------------------------------------------------------------------------

X3 = torch.tensor([[1.0, 0.0, 2.0], [0.5, -1.0, 0.0], [0.0, 1.0, 3.0]])


def test_ntk_of_linear_model_is_c_x_xt():
    # f(x) = W x with C outputs: d sum_c f_c / dW = [x; ...; x] (C rows), so Theta = C X X^T;
    # a bias adds d sum_c f_c / db = 1 per output: Theta = C (X X^T + 1).
    lin = nn.Sequential(nn.Flatten(), nn.Linear(3, 4))
    xxt = (X3 @ X3.T).double()
    got = ntk_cond.ntk_matrix(lin, X3.view(3, 3, 1, 1))
    torch.testing.assert_close(got, 4 * xxt)
    got_all = ntk_cond.ntk_matrix(lin, X3.view(3, 3, 1, 1), "all")
    torch.testing.assert_close(got_all, 4 * (xxt + 1))
    eig = np.linalg.eigvalsh(4 * xxt.numpy())
    assert ntk_cond.condition_number(got) == pytest.approx(eig[-1] / eig[0], rel=1e-10)


def test_ntk_batched_backward_matches_one_backward_per_sample():
    torch.manual_seed(0)
    net, x = small_convnet().train(), torch.randn(10, 3, 4, 4)  # BN couples the samples
    params = [p for name, p in net.named_parameters() if "weight" in name]
    logits = net(x)
    rows = []
    for i in range(10):
        grads = torch.autograd.grad(logits[i].sum(), params, retain_graph=True)
        rows.append(torch.cat([g.reshape(-1) for g in grads]).double())
    feats = torch.stack(rows)
    torch.testing.assert_close(ntk_cond.ntk_matrix(net, x), feats @ feats.T)


def test_ntk_engine_value_and_failures():
    def lin():
        return nn.Sequential(nn.Flatten(), nn.Linear(3, 2, bias=False))

    out = one(lin, "ntk_cond", toy_arch(1), batch_size=3, data_kind="synthetic",
              extra={"network": "full"})
    assert out.error is None and out.settings.repeats == 3
    conds = []
    for seed in (0, 1, 2):  # repeats: seeds 0..2, each its own batch
        xb = data.calibration_batch("synthetic", 3, seed, (3, 1, 1), 10).x.view(3, 3).double()
        eig = np.linalg.eigvalsh(2 * (xb @ xb.T).numpy())
        conds.append(eig[-1] / eig[0])
    assert out.value == pytest.approx(-sum(conds) / 3, rel=1e-9)
    with pytest.raises(NumericalFailure, match="singular"):
        ntk_cond.condition_number(torch.ones(3, 3, dtype=torch.float64))
    with pytest.raises(NumericalFailure, match="NaN"):
        ntk_cond.condition_number(torch.full((2, 2), float("nan"), dtype=torch.float64))
    # More samples than weights: rank <= 3 < 4.
    out = one(lin, "ntk_cond", toy_arch(1), batch_size=4, repeats=1, data_kind="synthetic",
              extra={"network": "full"})
    assert isinstance(out.error, NumericalFailure) and "singular" in out.error.message
    out = one(lin, "ntk_cond", toy_arch(1), batch_size=3, data_kind="synthetic")
    assert isinstance(out.error, FailedPrecondition) and "network=full" in out.error.message


# --- linear_regions -----------------------------------------------------------------------------

def hidden_relu() -> nn.Module:
    conv = nn.Conv2d(1, 2, 1)  # on 1x1 images: h = relu([x, -x])
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1))
        conv.bias.zero_()
    return nn.Sequential(conv, nn.ReLU())


def test_linear_regions_one_hidden_layer_by_hand():
    x = torch.tensor([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0]).view(6, 1, 1, 1)
    # x > 0: pattern 10; x < 0: 01; x = 0: 00 -> three regions.
    assert linear_regions.count_regions(hidden_relu(), [x]) == 3
    assert linear_regions.count_regions(hidden_relu(), [x[:3], x[3:]]) == 3
    assert linear_regions.count_regions(hidden_relu(), [x[3:], x[4:]]) == 1  # across chunks
    with pytest.raises(NumericalFailure, match="4-D"):
        linear_regions.count_regions(nn.Sequential(nn.Flatten(), nn.ReLU()), [x])


def test_pattern_counter_concatenates_calls():
    a = torch.tensor([[1, 0], [1, 0], [0, 1], [0, 1], [1, 0]], dtype=torch.bool)
    b = torch.tensor([[1], [0], [1], [1], [1]], dtype=torch.bool)
    counter = linear_regions.PatternCounter(5)
    counter.add(a)
    assert counter.count == 2
    counter.add(b)
    assert counter.count == len({tuple(r) for r in torch.cat([a, b], 1).tolist()}) == 3
    wide = torch.rand(4, 1000, generator=torch.Generator().manual_seed(0)) > 0.5
    wide[3] = wide[1]
    counter = linear_regions.PatternCounter(4)
    counter.add(wide)
    assert counter.count == 3


def test_random_crops_are_crops():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).view(2, 3, 5, 5)
    crops = linear_regions.random_crops(x, 3, torch.Generator().manual_seed(1))
    assert crops.shape == (2, 1, 3, 3)
    for n in range(2):
        found = [(c, i, j) for c in range(3) for i in range(3) for j in range(3)
                 if torch.equal(x[n, c, i:i + 3, j:j + 3], crops[n, 0])]
        assert len(found) == 1


def test_linear_regions_full_network_via_engine():
    def reads_channel0():
        conv = nn.Conv2d(3, 2, 1)  # h = relu([x0, -x0]) of the first channel
        with torch.no_grad():
            conv.weight.copy_(torch.tensor([[1.0, 0, 0], [-1.0, 0, 0]]).view(2, 3, 1, 1))
            conv.bias.zero_()
        return nn.Sequential(conv, nn.ReLU())

    out = one(reads_channel0, "linear_regions", toy_arch(1), batch_size=9, repeats=1,
              data_kind="synthetic", extra={"network": "full"})
    x0 = data.calibration_batch("synthetic", 9, 0, (3, 1, 1), 10).x[:, 0].flatten()
    assert out.error is None
    assert out.value == len({float(v) for v in torch.sign(x0)}) == 2


# --- gradsign -----------------------------------------------------------------------------------

GS_X = torch.tensor([[1.0, -2.0], [3.0, 1.0], [-1.0, 0.0]]).view(3, 2, 1, 1)
GS_Y = torch.tensor([0, 0, 1])


def test_gradsign_by_hand():
    # W = 0: p = (1/2, 1/2), dL/dW[k] = (p_k - [y = k]) x, so row 0 has sign -sign(x) for y = 0
    # and +sign(x) for y = 1, row 1 the opposite. Sign sums: row 0 (-1-1-1, +1-1+0) = (-3, 0),
    # row 1 (3, 0): score 6.
    assert gradsign.gradsign_score(zero_linear(), GS_X, GS_Y) == 6.0
    assert gradsign.gradsign_score(zero_linear(), GS_X, GS_Y, "mean") == 6.0 / 4


def test_gradsign_nan_is_failure():
    class NaNs(nn.Module):
        def forward(self, x):
            return x * float("nan")

    net = nn.Sequential(nn.Flatten(), nn.Linear(2, 2), NaNs())
    with pytest.raises(NumericalFailure, match="non-finite"):
        gradsign.gradsign_score(net, GS_X, GS_Y)


# --- zico ---------------------------------------------------------------------------------------

def test_zico_two_batches_by_hand():
    # One sample per mini-batch, W = 0: g1 = [[-.5, 1], [.5, -1]], g2 = [[-1.5, -.5], [1.5, .5]].
    # mean|g| = [[1, .75], [1, .75]], std = |g1 - g2| / 2 = [[.5, .75], [.5, .75]]:
    # ratios [[2, 1], [2, 1]], one layer: log 6.
    grads = zico.layer_gradients(zero_linear(), GS_X[:2], GS_Y[:2], 2)
    assert zico.zico_from_gradients(grads) == pytest.approx(math.log(6.0), rel=1e-12)
    # Zero second coordinate in both samples: that column has std 0 and is skipped: log 4.
    x = torch.tensor([[1.0, 0.0], [3.0, 0.0]]).view(2, 2, 1, 1)
    grads = zico.layer_gradients(zero_linear(), x, GS_Y[:2], 2)
    assert zico.zico_from_gradients(grads) == pytest.approx(math.log(4.0), rel=1e-12)
    same = zico.layer_gradients(zero_linear(), torch.cat([x[:1], x[:1]]), GS_Y[:2], 2)
    with pytest.raises(NumericalFailure, match="std 0"):
        zico.zico_from_gradients(same)


def test_zico_sums_layers_and_checks_batches():
    g = {"a": torch.tensor([[1.0, 2.0], [3.0, 2.0]], dtype=torch.float64),
         "b": torch.tensor([[0.0], [2.0]], dtype=torch.float64)}
    # a: mean|g| (2, 2), std (1, 0) -> 2; b: mean 1, std 1 -> 1.
    assert zico.zico_from_gradients(g) == pytest.approx(math.log(2.0) + math.log(1.0))
    out = one(small_convnet, "zico", batch_size=2, data_kind="synthetic", extra={"batches": "3"})
    assert isinstance(out.error, InvalidArgument)


# --- through the engine: determinism and NB201 --------------------------------------------------

SMALL = {"zen": {"batch_size": 8}, "zico": {"batch_size": 8}, "gradsign": {"batch_size": 4},
         "linear_regions": {"batch_size": 50, "repeats": 1},
         "ntk_cond": {"batch_size": 8, "repeats": 1}}


def test_same_seed_bit_identical_on_toy_network():
    calls = [(n, SettingsOverride(seed=3, **SMALL[n], **(
        {"extra": {"network": "full"}} if n in ("ntk_cond", "linear_regions") else {})))
        for n in EXTRA]
    first = compute_proxies(ToySpace(small_convnet), toy_arch(), calls)
    second = compute_proxies(ToySpace(small_convnet), toy_arch(), calls[::-1])[::-1]
    assert all(o.error is None for o in first), [o.error for o in first]
    assert [o.value for o in first] == [o.value for o in second]


def test_nb201_each_proxy_runs_and_is_deterministic():
    space = nb201.SPACE
    arch = space.parse(NB201_ARCH)
    calls = [(n, SettingsOverride(seed=1, **SMALL[n])) for n in EXTRA]
    first = {o.name: o for o in compute_proxies(space, arch, calls)}
    assert all(o.error is None and math.isfinite(o.value) for o in first.values()), first
    assert first["linear_regions"].value <= 150 and first["ntk_cond"].value <= -1.0
    again = {o.name: o.value for o in compute_proxies(space, arch, calls[:2])}
    assert again == {n: first[n].value for n in again}
    other = compute_proxies(space, arch, [("zen", SettingsOverride(seed=2, batch_size=8))])
    assert other[0].value != first["zen"].value


def test_nb201_dead_cell_fails_where_undefined():
    space = nb201.SPACE
    arch = space.parse(DEAD_ARCH)
    out = {o.name: o for o in compute_proxies(
        space, arch, [(n, SettingsOverride(**SMALL[n])) for n in ("zen", "ntk_cond")])}
    for name in ("zen", "ntk_cond"):
        assert isinstance(out[name].error, NumericalFailure), (name, out[name])
    assert "degenerate_cell" in out["zen"].flags
