"""The zero-cost-nas proxy suite and shared passes, checked against hand computations."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pytest
import torch
from conftest import ToySpace
from torch import nn

from edgescore.server.errors import NumericalFailure, ResourceExhausted, ServerError
from edgescore.server.proxies import data, passes
from edgescore.server.proxies.base import SettingsOverride
from edgescore.server.proxies.engine import compute_proxies
from edgescore.server.proxies.registry import get_proxy
from edgescore.server.spaces.base import ParsedArch

GRADIENT_PROXIES = ["grad_norm", "snip", "plain", "fisher"]
JACOBIAN_PROXIES = ["jacob_cov", "epe_nas"]
SUITE = [*GRADIENT_PROXIES, "l2_norm", "grasp", *JACOBIAN_PROXIES]
K = 1e-5


def toy_arch(resolution: int = 2, num_classes: int = 3) -> ParsedArch:
    return ParsedArch(space="toy", canonical="toy", num_classes=num_classes,
                      input_resolution=resolution)


def run(factory, names, arch=None, **override):
    calls = [(n, SettingsOverride(**override)) for n in names]
    outcomes = compute_proxies(ToySpace(factory), arch or toy_arch(), calls)
    return {o.name: o for o in outcomes}


def values(outcomes) -> dict[str, float]:
    assert all(o.error is None for o in outcomes.values()), outcomes
    return {name: o.value for name, o in outcomes.items()}


def synthetic(arch: ParsedArch, batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The batch the engine feeds for data_kind='synthetic', in float64."""
    b = data.calibration_batch("synthetic", batch, seed, arch.input_shape, arch.num_classes)
    return b.x.double().numpy(), b.y.numpy()


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


W = np.array([[0.5, -1.0, 0.25, 0.0, 1.5, -0.5, 0.75, -0.25, 1.0, 0.5, -1.5, 0.25],
              [-0.25, 0.5, 1.0, -1.0, 0.0, 0.25, -0.5, 1.25, -0.75, 0.0, 0.5, 1.0],
              [1.0, 0.25, -0.5, 0.5, -1.0, 0.75, 0.0, -0.25, 0.5, -1.25, 0.25, -0.5]])
B = np.array([0.1, -0.2, 0.3])


def linear_net() -> nn.Module:
    layer = nn.Linear(12, 3)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(W))
        layer.bias.copy_(torch.tensor(B))
    return nn.Sequential(nn.Flatten(), layer)


# --- gradient proxies by hand -------------------------------------------------------------------

def test_gradient_proxies_of_softmax_regression_by_hand():
    arch, n = toy_arch(), 16
    x, y = synthetic(arch, n)
    x = x.reshape(n, -1)
    z = x @ W.T + B
    p = softmax(z)
    dz = (p - np.eye(3)[y]) / n  # dL/dlogits of the mean cross-entropy
    g = dz.T @ x  # dL/dW; the bias gradient is not scored
    # Fisher on the Linear output a = z: g_nk = a * dL/da, F_k = 0.5 mean_n g_nk^2, each
    # channel's value spread over its 12 weights.
    fisher = (0.5 * ((z * dz) ** 2).mean(axis=0)).sum() * 12
    # GraSP: Hg for the softmax-regression Hessian, H g = 1/n sum_n (diag p - p p^T)(g x_n) x_n^T.
    u = x @ g.T
    v = p * u - p * (p * u).sum(axis=1, keepdims=True)
    hg = v.T @ x / n
    expected = {"grad_norm": np.linalg.norm(g), "snip": np.abs(W * g).sum(),
                "plain": -(W * g).sum(), "fisher": fisher, "l2_norm": np.linalg.norm(W),
                "grasp": (-W * hg).sum()}
    got = values(run(linear_net, list(expected), arch, batch_size=n, data_kind="synthetic"))
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=2e-5, abs=1e-9), name


def test_fisher_sums_positions_and_spreads_channels_by_hand():
    # A 1x1 conv (2 channels, 3 inputs) on 2x2 images, averaged to the logits.
    wc = np.array([[0.5, -1.0, 0.25], [1.0, 0.5, -0.75]])
    bc = np.array([0.2, -0.1])

    def net():
        conv = nn.Conv2d(3, 2, 1)
        with torch.no_grad():
            conv.weight.copy_(torch.tensor(wc).view(2, 3, 1, 1))
            conv.bias.copy_(torch.tensor(bc))
        return nn.Sequential(conv, nn.AdaptiveAvgPool2d(1), nn.Flatten())

    arch, n = toy_arch(num_classes=2), 8
    x, y = synthetic(arch, n)
    a = np.einsum("kc,nchw->nkhw", wc, x) + bc[None, :, None, None]
    logits = a.mean(axis=(2, 3))
    dz = (softmax(logits) - np.eye(2)[y]) / n
    da = np.broadcast_to(dz[:, :, None, None] / 4, a.shape)  # the mean over 4 positions
    g_nk = (a * da).sum(axis=(2, 3))
    expected = (0.5 * (g_nk**2).mean(axis=0)).sum() * 3  # 3 weights per output channel
    got = values(run(net, ["fisher"], arch, batch_size=n, data_kind="synthetic"))
    assert got["fisher"] == pytest.approx(expected, rel=2e-5)


# --- Jacobian proxies by hand -------------------------------------------------------------------

class Square(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(x * x, 1)


def reference_jacob_cov(jac: np.ndarray) -> float:
    v, _ = np.linalg.eig(np.corrcoef(jac))  # the reference's eig (values real here)
    return float(-np.sum(np.log(v.real + K) + 1.0 / (v.real + K)))


def reference_epe(jac: np.ndarray, labels: np.ndarray) -> float:
    total = 0.0
    for c in np.unique(labels):
        rows = jac[labels == c]
        corr = np.corrcoef(rows) if len(rows) > 1 else np.array(1.0)
        total += abs(np.sum(np.log(np.abs(corr) + K)))
    return total


def test_jacobian_proxies_of_elementwise_square_by_hand():
    # d(sum of x*x)/dx_i = 2 x_i: the Jacobian correlations are those of the inputs themselves.
    arch, n = toy_arch(resolution=4, num_classes=3), 12
    x, y = synthetic(arch, n)
    jac = 2 * x.reshape(n, -1)
    got = values(run(Square, JACOBIAN_PROXIES, arch, batch_size=n, data_kind="synthetic"))
    assert got["jacob_cov"] == pytest.approx(reference_jacob_cov(jac), rel=1e-9)
    assert got["epe_nas"] == pytest.approx(reference_epe(jac, y), rel=1e-9)


def test_jacob_cov_of_linear_map_has_rank_one_correlations():
    # A linear map's Jacobian is the same for every sample: C is all ones, eigenvalues n, 0, ..., 0.
    n = 8
    got = values(run(linear_net, ["jacob_cov"], batch_size=n, data_kind="synthetic"))
    expected = -(math.log(n + K) + 1 / (n + K)) - (n - 1) * (math.log(K) + 1 / K)
    assert got["jacob_cov"] == pytest.approx(expected, rel=1e-6)


def test_epe_nas_many_classes_rule_and_dropped_singletons():
    from edgescore.server.proxies.epe_nas import epe_nas_score

    corr = np.array([[1.0, 0.5, 0.1, 0.2], [0.5, 1.0, 0.3, 0.4],
                     [0.1, 0.3, 1.0, 0.6], [0.2, 0.4, 0.6, 1.0]])
    labels = np.array([0, 0, 1, 2])
    block = np.log(np.abs(corr[:2, :2]) + K).sum()
    single = math.log(1 + K)
    assert epe_nas_score(corr, labels, 10) == pytest.approx(abs(block) + 2 * single)
    # Above 100 classes: class 0 only (singletons dropped), so every pairwise difference is 0.
    assert epe_nas_score(corr, labels, 120) == 0.0
    labels = np.array([0, 0, 1, 1])
    s0, s1 = block / 2, np.log(np.abs(corr[2:, 2:]) + K).sum() / 2
    assert epe_nas_score(corr, labels, 120) == pytest.approx(2 * abs(s0 - s1) / 2)


# --- numerical failures -------------------------------------------------------------------------

class Constant(nn.Module):
    """Output independent of the input: every input-Jacobian is zero."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([0.5, -0.5, 0.25]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, :3] * 0.0 + self.bias


def test_constant_jacobian_is_numerical_failure():
    outcomes = run(Constant, JACOBIAN_PROXIES, batch_size=8, data_kind="synthetic")
    for name in JACOBIAN_PROXIES:
        assert outcomes[name].value is None
        assert isinstance(outcomes[name].error, NumericalFailure), outcomes[name].error
        assert "shared pass" not in outcomes[name].error.message  # the pass itself succeeded
        assert "constant" in outcomes[name].error.message


def test_nan_network_gives_numerical_failure_for_every_data_proxy():
    class NaNs(nn.Module):
        def forward(self, x):
            return x * float("nan")

    def net():
        return nn.Sequential(nn.Flatten(), nn.Linear(12, 4), NaNs(), nn.ReLU(), nn.Linear(4, 3))

    outcomes = run(net, SUITE, batch_size=8, data_kind="synthetic")
    assert outcomes["l2_norm"].error is None  # data-free: the weights are finite
    for name in set(SUITE) - {"l2_norm"}:
        assert outcomes[name].value is None
        assert isinstance(outcomes[name].error, NumericalFailure), (name, outcomes[name].error)


# --- shared passes ------------------------------------------------------------------------------

class CountingFlatten(nn.Flatten):
    rows = 0  # a class attribute, so deep copies of the network count into it too

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        type(self).rows += x.shape[0]
        return super().forward(x)


def small_net(classes: int = 3) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Conv2d(4, 4, 1), nn.AdaptiveAvgPool2d(1), CountingFlatten(),
                         nn.Linear(4, classes))


@pytest.mark.parametrize("names, forwards", [
    (GRADIENT_PROXIES, 1),
    (JACOBIAN_PROXIES, 1),
    ([*GRADIENT_PROXIES, *JACOBIAN_PROXIES, "l2_norm"], 2),
    (["l2_norm"], 0),
])
def test_shared_pass_runs_once_per_settings(names, forwards):
    CountingFlatten.rows = 0
    values(run(small_net, names, batch_size=8, data_kind="synthetic"))
    assert CountingFlatten.rows == 8 * forwards
    CountingFlatten.rows = 0
    values(run(small_net, names, batch_size=8, data_kind="synthetic", repeats=3))
    assert CountingFlatten.rows == 8 * forwards * 3  # one pass per seed


class VariantSpace(ToySpace):
    """A toy space with two networks per arch, as nb201 has ("benchmark", "zero_cost_nas")."""

    network_variants = ("benchmark", "zero_cost_nas")

    def __init__(self) -> None:
        super().__init__(small_net)
        self.variants: list[str] = []

    def build(self, arch: ParsedArch, variant: str = "") -> nn.Module:
        self.variants.append(variant)
        torch.manual_seed(123 if variant == "zero_cost_nas" else 0)  # a visibly other network
        return super().build(arch)


def test_zero_cost_nas_proxies_default_to_that_network_and_share_its_pass():
    space = VariantSpace()
    CountingFlatten.rows = 0
    calls = [(n, SettingsOverride(batch_size=8, data_kind="synthetic")) for n in GRADIENT_PROXIES]
    outcomes = compute_proxies(space, toy_arch(), calls)
    assert space.variants == ["zero_cost_nas"] and CountingFlatten.rows == 8  # one shared pass
    assert all(o.settings.extra == {"network": "zero_cost_nas"} for o in outcomes)
    bench = compute_proxies(space, toy_arch(), [("fisher", SettingsOverride(
        batch_size=8, data_kind="synthetic", extra={"network": "benchmark"}))])[0]
    assert space.variants[-1] == "" and bench.value != outcomes[3].value  # the space's own
    # epe_nas has no zero-cost-nas model: it runs on the space's own network.
    epe = compute_proxies(space, toy_arch(), [("epe_nas", SettingsOverride(
        batch_size=8, data_kind="synthetic"))])[0]
    assert space.variants[-1] == "" and "network" not in epe.settings.extra


def test_different_settings_do_not_share():
    CountingFlatten.rows = 0
    calls = [("grad_norm", SettingsOverride(batch_size=8, data_kind="synthetic")),
             ("snip", SettingsOverride(batch_size=4, data_kind="synthetic"))]
    compute_proxies(ToySpace(small_net), toy_arch(), calls)
    assert CountingFlatten.rows == 8 + 4


def test_alone_equals_together_and_is_deterministic():
    together = values(run(small_net, SUITE, batch_size=8, seed=3))
    again = values(run(small_net, list(reversed(SUITE)), batch_size=8, seed=3))
    assert together == again
    for name in SUITE:
        assert values(run(small_net, [name], batch_size=8, seed=3))[name] == together[name], name
    other = values(run(small_net, SUITE, batch_size=8, seed=4))
    assert all(other[n] != together[n] for n in SUITE)


def test_pass_failure_fails_each_dependent_proxy_with_its_name():
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom\nsecond line")

    def net():
        return nn.Sequential(nn.Flatten(), nn.Linear(12, 3), Broken())

    outcomes = run(net, [*GRADIENT_PROXIES, "l2_norm", "params"], batch_size=4,
                   data_kind="synthetic")
    assert outcomes["l2_norm"].error is None and outcomes["params"].error is None
    for name in GRADIENT_PROXIES:
        assert type(outcomes[name].error) is ServerError
        assert outcomes[name].error.message == (
            f"{name}: shared pass 'gradients' failed (RuntimeError: boom)")

    class Refuses(nn.Module):
        def forward(self, x):
            raise NumericalFailure("refused")

    outcomes = run(lambda: nn.Sequential(nn.Flatten(), Refuses()), JACOBIAN_PROXIES,
                   batch_size=4, data_kind="synthetic")
    for name in JACOBIAN_PROXIES:
        assert isinstance(outcomes[name].error, NumericalFailure)
        assert outcomes[name].error.message == (
            f"{name}: shared pass 'input_jacobian' failed: refused")


def test_pass_flags_reach_each_proxy():
    outcomes = run(lambda: small_net(100), [*GRADIENT_PROXIES, "l2_norm"],
                   toy_arch(resolution=8, num_classes=100),
                   batch_size=8, data_kind="cifar10")
    for name in GRADIENT_PROXIES:
        assert outcomes[name].flags == (data.STAND_IN_FLAG,)
    assert outcomes["l2_norm"].flags == ()  # data-free


# --- out of memory: split the batch -------------------------------------------------------------

class OOMAbove(nn.Module):
    """Raises a CUDA-style OOM for chunks larger than `limit` samples."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (test)")
        return x


def bn_free_net(limit: int) -> Callable[[], nn.Module]:
    def net():
        return nn.Sequential(OOMAbove(limit), nn.Conv2d(3, 4, 3, padding=1), nn.Tanh(),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    return net


def test_oom_splits_batch_and_matches_unsplit_without_batchnorm():
    names = [*GRADIENT_PROXIES, "grasp", *JACOBIAN_PROXIES]
    whole = run(bn_free_net(1000), names, batch_size=8, data_kind="synthetic")
    split = run(bn_free_net(3), names, batch_size=8, data_kind="synthetic")  # chunks of 2
    for name in names:
        assert whole[name].flags == ()
        assert split[name].flags == (passes.BATCH_SPLIT_FLAG,), name
        assert split[name].value == pytest.approx(whole[name].value, rel=1e-5, abs=1e-9), name


def test_oom_at_one_sample_is_resource_exhausted_per_proxy():
    outcomes = run(bn_free_net(0), ["snip", "grasp", "l2_norm"], batch_size=4,
                   data_kind="synthetic")
    assert isinstance(outcomes["snip"].error, ResourceExhausted)
    assert "snip: shared pass 'gradients': out of memory" in outcomes["snip"].error.message
    assert isinstance(outcomes["grasp"].error, ResourceExhausted)
    assert outcomes["l2_norm"].error is None


# --- declarations and NB201 ---------------------------------------------------------------------

def test_declarations():
    for name in SUITE:
        proxy = get_proxy(name)
        assert proxy.transform == ("negate" if name == "plain" else "none")
        assert proxy.unit and proxy.reference
        assert proxy.needs_data == (name != "l2_norm")
        assert proxy.needs_labels == (name not in ("l2_norm", "jacob_cov"))
        if proxy.needs_data:
            assert (proxy.batch_size, proxy.data_kind) == (64, "cifar10")
    assert {get_proxy(n).shared_pass for n in GRADIENT_PROXIES} == {passes.GRADIENTS}
    assert {get_proxy(n).shared_pass for n in JACOBIAN_PROXIES} == {passes.JACOBIAN}
    assert get_proxy("grasp").mutates_network and get_proxy("grasp").shared_pass is None


def test_nb201_suite_runs():
    nb201 = pytest.importorskip("edgescore.server.spaces.nb201")
    # Light ops and a small batch: GraSP's double backward dominates the time.
    arch = nb201.SPACE.parse("|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|"
                             "+|none~0|skip_connect~1|nor_conv_1x1~2|")
    calls = [(n, SettingsOverride(batch_size=6)) for n in SUITE]
    outcomes = {o.name: o for o in compute_proxies(nb201.SPACE, arch, calls)}
    for name, o in outcomes.items():
        assert o.error is None and math.isfinite(o.value), (name, o.error)
        assert o.settings.batch_size == (6 if name != "l2_norm" else 1)
    assert outcomes["grad_norm"].value > 0 and outcomes["snip"].value > 0
    assert outcomes["fisher"].value > 0 and outcomes["epe_nas"].value > 0
