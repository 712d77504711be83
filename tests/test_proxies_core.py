"""Proxy registry, engine, calibration data and the first four proxies, checked by hand counts."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import pytest
import torch
from conftest import ToySpace
from torch import nn

from edgescore.server.errors import (
    InvalidArgument,
    NotFound,
    NumericalFailure,
    ServerError,
)
from edgescore.server.proxies import data, naswot
from edgescore.server.proxies.base import SettingsOverride
from edgescore.server.proxies.engine import compute_proxies
from edgescore.server.proxies.registry import all_proxies, get_proxy
from edgescore.server.spaces.base import ParsedArch

CORE = ["flops", "naswot", "params", "synflow"]


def toy_arch(resolution: int = 8, num_classes: int = 10, flags: tuple[str, ...] = ()) -> ParsedArch:
    return ParsedArch(space="toy", canonical="toy", num_classes=num_classes,
                      input_resolution=resolution, flags=flags)


def run(factory: Callable[[], nn.Module], calls, arch: ParsedArch | None = None):
    return compute_proxies(ToySpace(factory), arch or toy_arch(), calls)


def one(factory: Callable[[], nn.Module], name: str, arch: ParsedArch | None = None,
        **override):
    (outcome,) = run(factory, [(name, SettingsOverride(**override))], arch)
    return outcome


def small_convnet() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


# --- registry -----------------------------------------------------------------------------------

def test_registry_discovers_core_proxies_sorted():
    names = [p.name for p in all_proxies()]
    assert set(CORE) <= set(names)
    assert names == sorted(names)
    assert get_proxy("synflow").transform == "log"


def test_unknown_proxy_is_not_found():
    with pytest.raises(NotFound, match=r"unknown proxy 'nope'; known: .*naswot"):
        get_proxy("nope")
    space = ToySpace(small_convnet)
    with pytest.raises(NotFound):
        compute_proxies(space, toy_arch(), [("params", SettingsOverride()), ("nope", None)])
    assert space.builds == 0


# --- params and flops ---------------------------------------------------------------------------

def test_params_hand_count():
    def net():
        frozen = nn.Linear(3, 2)
        frozen.requires_grad_(False)  # not trainable: not counted
        return nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 3), frozen)

    out = one(net, "params", toy_arch(resolution=2))  # 3*2*2 = 12 inputs
    assert out.error is None
    assert out.value == (12 * 5 + 5) + (5 * 3 + 3)
    assert out.unit == "parameters" and out.transform == "none"


def test_flops_hand_count_macs():
    def net():
        return nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=4, bias=False), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))

    conv1 = (8 * 8 * 8) * (3 * 3 * 3)  # 8x8x8 outputs, each 3 in-channels x 3x3
    conv2 = (8 * 4 * 4) * (8 // 4 * 3 * 3)  # stride 2 -> 4x4; groups=4 -> 2 in-channels each
    linear = 8 * 10
    out = one(net, "flops", toy_arch(resolution=8))
    assert out.error is None
    assert out.value == conv1 + conv2 + linear == 16208
    assert "not 2x" in get_proxy("flops").description


def test_flops_counts_attention_matmuls():
    from edgescore.server.proxies.flops import count_macs
    from edgescore.server.spaces import vit

    spec = {"embed_dim": 64, "depth": 2, "num_heads": [1, 2], "mlp_ratio": [2, 2],
            "patch_size": 16}
    arch = vit.SPACE.parse(spec, 10, 32)
    network = vit.SPACE.build(arch)
    patches = sum(m.weight.numel() * 2 * 2 for m in network.modules() if isinstance(m, nn.Conv2d))
    tokens = (32 // 16) ** 2 + 1
    linear = sum(m.weight.numel() * tokens for m in network.modules()
                 if isinstance(m, nn.Linear) and m.out_features != 10)
    head = 64 * 10  # the classifier sees the class token only
    attention = 2 * (1 + 2) * tokens * tokens * vit.HEAD_DIM  # Q.K^T and A.V of each head
    assert count_macs(network, arch.input_shape) == patches + linear + head + attention


# --- synflow ------------------------------------------------------------------------------------

W1 = [[0.5, -1.0, 2.0], [-0.25, 0.75, 1.5], [1.0, 1.0, -1.0], [0.0, -2.0, 0.5]]
B1 = [0.5, -0.25, 1.0, -2.0]
W2 = [[1.0, -0.5, 0.25, 2.0], [-1.5, 1.0, 0.0, 0.5]]


def linear_chain(bias: bool) -> Callable[[], nn.Module]:
    def net():
        first, second = nn.Linear(3, 4, bias=bias), nn.Linear(4, 2, bias=False)
        bn = nn.BatchNorm1d(4)
        with torch.no_grad():
            first.weight.copy_(torch.tensor(W1))
            if bias:
                first.bias.copy_(torch.tensor(B1))
            second.weight.copy_(torch.tensor(W2))
            bn.weight.fill_(7.0)  # would change the score if BN were not removed
            bn.bias.fill_(-3.0)
        return nn.Sequential(nn.Flatten(), first, bn, second)
    return net


@pytest.mark.parametrize("bias", [False, True])
def test_synflow_linear_chain_by_hand(bias):
    a1, a2 = np.abs(np.array(W1)), np.abs(np.array(W2))
    b = np.abs(np.array(B1)) if bias else np.zeros(4)
    # Input is all ones: h = |W1| 1 + |b|, R = 1^T |W2| h. With s = 1^T |W2|:
    # dR/dW2[i,j] = h[j] and dR/dW1[j,k] = s[j], so the weights score
    # sum |W2| * h + sum_j s[j] * rowsum(|W1|)[j] = R + (R - s.|b|). Biases are not scored.
    h = a1.sum(axis=1) + b
    s = a2.sum(axis=0)
    r = s @ h
    score = r + s @ a1.sum(axis=1)
    assert score == pytest.approx(2 * r - s @ b)
    out = one(linear_chain(bias), "synflow", toy_arch(resolution=1))
    assert out.error is None
    assert out.value == pytest.approx(math.log(score), rel=1e-12)
    assert out.settings.batch_size == 1


def test_synflow_zero_path_is_numerical_failure():
    class Zero(nn.Module):
        def forward(self, x):
            return x * 0.0

    out = one(lambda: nn.Sequential(nn.Flatten(), nn.Linear(3, 2), Zero()), "synflow",
              toy_arch(resolution=1))
    assert out.value is None
    assert isinstance(out.error, NumericalFailure)
    assert "zero path" in out.error.message


# --- naswot -------------------------------------------------------------------------------------

class ReLUConvBN(nn.Sequential):
    """Named like NB201's op: the reference's name test hooks it as well as its inner ReLU."""


def two_relu_net() -> nn.Module:
    lin = nn.Linear(2, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[-1.0, 0.0], [0.0, -1.0]]))
        lin.bias.fill_(0.5)
    return nn.Sequential(nn.Flatten(), ReLUConvBN(nn.ReLU()), lin, nn.ReLU())


HAND_X = torch.tensor([[1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]]).view(3, 1, 1, 2)


def test_naswot_kernel_and_logdet_by_hand():
    net, x = two_relu_net(), HAND_X
    # ReLU 1 sees x: codes a=10, b=01, c=11. Its output (1,0),(0,1),(1,1) goes through
    # -v + 0.5 = (-.5,.5),(.5,-.5),(-.5,-.5), so ReLU 2 sees codes a=01, b=10, c=00.
    codes1 = np.array([[1, 0], [0, 1], [1, 1]])
    codes2 = np.array([[0, 1], [1, 0], [0, 0]])
    expected = sum(c @ c.T + (1 - c) @ (1 - c).T for c in (codes1, codes2))
    np.testing.assert_array_equal(expected, [[4, 0, 2], [0, 4, 2], [2, 2, 4]])
    kernel = naswot.code_kernel(net, x)
    np.testing.assert_array_equal(kernel.numpy(), expected)
    # det [[4,0,2],[0,4,2],[2,2,4]] = 4(16-4) - 0 + 2(0-8) = 32
    assert naswot.log_abs_det(kernel) == pytest.approx(math.log(32.0), rel=1e-12)


def test_naswot_reference_hooks_count_relu_named_blocks_twice():
    # The ReLUConvBN block's input is its ReLU's input: codes1 again, so K = 2 K1 + K2 =
    # [[6,0,3],[0,6,3],[3,3,6]], det = 6(36-9) - 0 + 3(0-18) = 108.
    kernel = naswot.code_kernel(two_relu_net(), HAND_X, hooks="reference")
    np.testing.assert_array_equal(kernel.numpy(), [[6, 0, 3], [0, 6, 3], [3, 3, 6]])
    assert naswot.log_abs_det(kernel) == pytest.approx(math.log(108.0), rel=1e-12)
    plain = one(small_convnet, "naswot", batch_size=8)
    ref = one(small_convnet, "naswot", batch_size=8, extra={"hooks": "reference"})
    assert ref.value == plain.value  # no ReLU-named blocks here: the same modules are hooked
    assert ref.settings.extra == {"hooks": "reference"}


def test_naswot_identical_codes_are_numerical_failure():
    net = nn.Sequential(nn.Flatten(), nn.ReLU())
    x = torch.ones(4, 1, 1, 3)
    with pytest.raises(NumericalFailure, match="singular"):
        naswot.log_abs_det(naswot.code_kernel(net, x))


# --- engine: determinism, failures, settings ----------------------------------------------------

def test_same_seed_bit_identical_and_order_independent():
    calls = [(n, SettingsOverride(seed=3, batch_size=16)) for n in CORE]
    first = run(small_convnet, calls)
    second = run(small_convnet, list(reversed(calls)))[::-1]
    assert all(o.error is None for o in first)
    assert [o.value for o in first] == [o.value for o in second]
    other = one(small_convnet, "naswot", seed=4, batch_size=16)
    assert other.value != first[CORE.index("naswot")].value


def test_concurrent_requests_stay_deterministic():
    from concurrent.futures import ThreadPoolExecutor

    calls = [(n, SettingsOverride(seed=s, batch_size=8)) for s in (1, 2) for n in CORE]
    serial = [o.value for o in run(small_convnet, calls)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: [o.value for o in run(small_convnet, calls)], range(8)))
    assert all(r == serial for r in results)


def test_repeats_average_successive_seeds():
    values = [one(small_convnet, "naswot", seed=s, batch_size=8).value for s in (5, 6)]
    out = one(small_convnet, "naswot", seed=5, batch_size=8, repeats=2)
    assert out.value == pytest.approx(sum(values) / 2, rel=1e-15)
    assert out.settings.seed == 5 and out.settings.repeats == 2


def test_nan_network_gives_numerical_failure_not_exception():
    class NaNs(nn.Module):
        def forward(self, x):
            return x * float("nan")

    def net():
        return nn.Sequential(nn.Flatten(), nn.Linear(12, 4), NaNs(), nn.ReLU(), nn.Linear(4, 2))

    outcomes = run(net, [(n, SettingsOverride(batch_size=8)) for n in CORE], toy_arch(2))
    by_name = {o.name: o for o in outcomes}
    assert by_name["params"].error is None and by_name["flops"].error is None
    for name in ("synflow", "naswot"):
        assert by_name[name].value is None
        assert isinstance(by_name[name].error, NumericalFailure), by_name[name].error
    assert "non-finite" in by_name["synflow"].error.message


def test_unexpected_exception_becomes_server_error():
    class Broken(nn.Module):
        def forward(self, x):
            raise RuntimeError("boom\nsecond line")

    out = one(lambda: nn.Sequential(nn.Conv2d(3, 2, 1), Broken()), "flops")
    assert type(out.error) is ServerError
    assert out.error.message == "flops: failed (RuntimeError: boom)"


@pytest.mark.parametrize("override, field", [
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 5000}, "batch_size"),
    ({"batch_size": 1001}, "batch_size"),  # more than the bundled CIFAR-10 sample
    ({"repeats": 0}, "repeats"),
    ({"repeats": 101}, "repeats"),
    ({"seed": -1}, "seed"),
    ({"init": "bogus"}, "init"),
    ({"data_kind": "imagenet"}, "data_kind"),
    ({"data_kind": "registered"}, "dataset_id"),
    ({"extra": {"typo": "1"}}, "extra"),
    ({"extra": {"hooks": "all"}}, "extra[hooks]"),
])
def test_bad_settings_fail_whole_request(override, field):
    space = ToySpace(small_convnet)
    calls = [("params", SettingsOverride()), ("naswot", SettingsOverride(**override))]
    with pytest.raises(InvalidArgument) as info:
        compute_proxies(space, toy_arch(), calls)
    assert info.value.field == f"proxies[naswot].settings.{field}"
    assert space.builds == 0


def test_unknown_registered_dataset_is_not_found_per_proxy():
    # The service rejects unknown ids before running; in the engine it is a per-proxy failure.
    out = one(small_convnet, "naswot", data_kind="registered", dataset_id="d1")
    assert isinstance(out.error, NotFound) and "dataset_id" in out.error.message


def test_inits_change_weights_deterministically():
    values = {init: one(small_convnet, "synflow", init=init).value
              for init in ("default", "kaiming", "xavier", "normal")}
    assert len(set(values.values())) == 4
    assert one(small_convnet, "synflow", init="kaiming").value == values["kaiming"]


# --- calibration data ---------------------------------------------------------------------------

def test_cifar10_batch_normalised_and_seeded():
    images, labels = data.cifar10_sample()
    b = data.calibration_batch("cifar10", 16, 7, (3, 32, 32), 10)
    assert b.x.shape == (16, 3, 32, 32) and b.x.dtype == torch.float32
    assert b.y.dtype == torch.int64 and b.flags == ()
    rows = np.array(b.indices)
    assert len(set(b.indices)) == 16
    mean, std = data.NORMALISATIONS["zero_cost_nas"]
    expected = (images[rows].transpose(0, 3, 1, 2) / 255.0 - np.array(mean)[:, None, None]) \
        / np.array(std)[:, None, None]
    np.testing.assert_allclose(b.x.numpy(), expected, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(b.y.numpy(), labels[rows])
    again = data.calibration_batch("cifar10", 16, 7, (3, 32, 32), 10)
    assert again.indices == b.indices and torch.equal(again.x, b.x)
    assert data.calibration_batch("cifar10", 16, 8, (3, 32, 32), 10).indices != b.indices
    nb201 = data.calibration_batch("cifar10", 16, 7, (3, 32, 32), 10, normalisation="nb201")
    assert nb201.indices == b.indices and not torch.equal(nb201.x, b.x)


def test_cifar10_resized_and_stand_in_labels():
    b = data.calibration_batch("cifar10", 8, 1, (3, 16, 16), 10)
    assert b.x.shape == (8, 3, 16, 16) and data.STAND_IN_FLAG in b.flags
    c100 = data.calibration_batch("cifar10", 64, 1, (3, 32, 32), 100)
    assert c100.flags == (data.STAND_IN_FLAG,)
    assert 0 <= int(c100.y.min()) and int(c100.y.max()) < 100


def test_synthetic_batch_is_seeded():
    a = data.calibration_batch("synthetic", 4, 2, (3, 8, 8), 10)
    b = data.calibration_batch("synthetic", 4, 2, (3, 8, 8), 10)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and a.flags == ()


def test_flags_propagate_and_stand_in_only_where_data_is_used():
    arch = toy_arch(num_classes=100, flags=("dead_cell",))
    outcomes = run(small_convnet, [("params", SettingsOverride()),
                                   ("naswot", SettingsOverride(batch_size=8))], arch)
    assert outcomes[0].flags == ("dead_cell",)
    assert outcomes[1].flags == ("dead_cell", data.STAND_IN_FLAG)


# --- NB201, when its builder is present ---------------------------------------------------------

def test_nb201_all_core_proxies():
    nb201 = pytest.importorskip("edgescore.server.spaces.nb201")
    space = nb201.SPACE
    arch = space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
                       "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    calls = [(n, SettingsOverride(batch_size=16)) for n in CORE]
    outcomes = {o.name: o for o in compute_proxies(space, arch, calls)}
    assert all(o.error is None for o in outcomes.values()), outcomes
    net = space.build(arch)
    assert outcomes["params"].value == sum(p.numel() for p in net.parameters())
    assert outcomes["flops"].value > outcomes["params"].value
    assert math.isfinite(outcomes["synflow"].value) and math.isfinite(outcomes["naswot"].value)


def test_equal_extra_settings_resolve_equal_in_any_key_order() -> None:
    """Call dedupe and population keys use the repr: key order must not make two settings."""
    from edgescore.server.proxies.settings import resolve_settings

    proxy = get_proxy("ntk_cond")
    one = resolve_settings(proxy, SettingsOverride(extra={"network": "full",
                                                                 "params": "all"}), "s")
    other = resolve_settings(proxy, SettingsOverride(extra={"params": "all",
                                                                   "network": "full"}), "s")
    assert one == other and repr(one) == repr(other)
