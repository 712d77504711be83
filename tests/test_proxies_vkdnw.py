"""vkdnw, vkdnw_single and vkdnw_agg: the pieces by hand on tiny networks, then through the engine
on NB201, one arch of every other space and an ONNX upload."""

from __future__ import annotations

import math

import grpc
import numpy as np
import pytest
import torch
from conftest import ToySpace, onnx_bytes
from torch import nn

from edgescore.server.errors import NumericalFailure
from edgescore.server.proxies import _aggregate, _vkdnw
from edgescore.server.proxies.base import SettingsOverride
from edgescore.server.proxies.engine import compute_proxies
from edgescore.server.proxies.registry import get_composite, get_proxy
from edgescore.server.scoring import composite
from edgescore.server.spaces import registry as spaces
from edgescore.server.spaces.base import ParsedArch

NB201_ARCH = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
              "+|skip_connect~0|nor_conv_1x1~1|none~2|")
DEAD_ARCH = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
QUICK = {"batch_size": 4}


def small_convnet(track_running_stats: bool = True) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4, track_running_stats=track_running_stats),
        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))


def by_autograd(network: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """J[n, c, p] from one forward of each sample alone and full weight gradients, element 0 of
    each parameter tensor: what the reference's vmap(jacrev) computes."""
    params = [p for _, p in network.named_parameters()]
    rows = []
    for n in range(x.shape[0]):
        logits = network(x[n:n + 1])[0]
        rows.append(torch.stack([
            torch.stack([g.reshape(-1)[0] for g in torch.autograd.grad(logits[c], params,
                                                                       retain_graph=True)])
            for c in range(logits.shape[0])]))
    return torch.stack(rows)


@pytest.mark.parametrize("track", [True, False])
def test_jacobian_matches_per_sample_autograd(track: bool) -> None:
    # BN without running statistics mixes the batch even in eval mode: the sample-0 check then
    # fails and every sample is computed alone, as the reference does.
    network = small_convnet(track).eval()
    x = torch.randn(5, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    expected = by_autograd(network, x)
    for p in network.parameters():
        p.requires_grad_(False)
    jac, logits = _vkdnw.per_sample_jacobian(network, x)
    assert jac.shape == (5, 3, 6)  # conv w, b; BN w, b; linear w, b
    torch.testing.assert_close(jac, expected, rtol=1e-5, atol=1e-7)
    assert logits.shape == (5, 3)


def test_only_the_first_128_tensors_are_sampled() -> None:
    network = nn.Sequential(*[nn.Linear(2, 2) for _ in range(70)])  # 140 tensors
    chosen = _vkdnw.sampled_weights(network)
    assert len(chosen) == 128 and all(idx == [0] for _, idx in chosen)
    assert chosen[-1][0] is network[63].bias


def test_softmax_cov_factor_is_the_cholesky_factor() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5, 8.0], [0.0, 0.0, 0.0, 0.0]])
    chol = _vkdnw.softmax_cov_factor(logits)
    p = torch.softmax(logits.double(), 1) * 0.95 + 0.05 / 4
    cov = torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1)
    torch.testing.assert_close(chol @ chol.transpose(1, 2), cov)
    assert torch.equal(chol, torch.tril(chol)) and bool((chol[:, :, -1] == 0).all())


def test_fisher_forms() -> None:
    rng = np.random.default_rng(0)
    jac, logits = rng.normal(size=(3, 4, 5)), torch.tensor(rng.normal(size=(3, 4)))
    chol = _vkdnw.softmax_cov_factor(logits).numpy()
    factors = _vkdnw.FisherFactors(jac, chol, 7)
    ref = sum(jac[n].T @ chol[n].T @ chol[n] @ jac[n] for n in range(3)) / 3
    exact = sum(jac[n].T @ chol[n] @ chol[n].T @ jac[n] for n in range(3)) / 3
    np.testing.assert_allclose(_vkdnw.fisher_matrix(factors), ref)
    np.testing.assert_allclose(_vkdnw.fisher_matrix(factors, "exact"), exact)


def test_entropy_of_deciles_by_hand() -> None:
    # Equal eigenvalues: nine equal deciles, entropy log 9 (the maximum).
    assert _vkdnw.entropy_of_deciles(3.0 * np.eye(12)) == pytest.approx(math.log(9))
    # Eigenvalues 1..11: deciles 2..10 (linear interpolation at 0.1 .. 0.9 of 10 steps).
    t = np.arange(2.0, 11.0) / 54.0
    assert _vkdnw.entropy_of_deciles(np.diag(np.arange(1.0, 12.0))) == pytest.approx(
        float(-(t * np.log(t)).sum()), rel=1e-9)
    with pytest.raises(NumericalFailure, match="every decile"):
        _vkdnw.entropy_of_deciles(np.diag([5.0] + [0.0] * 20))


def test_nb201_through_the_engine() -> None:
    space, arch = spaces.parse_arch("nb201", NB201_ARCH, 10, 32)
    calls = [(n, SettingsOverride(**QUICK)) for n in ("vkdnw", "vkdnw_single", "vkdnw")]
    calls[2] = ("vkdnw", SettingsOverride(**QUICK, extra={"fisher": "exact"}))
    first, single, exact = compute_proxies(space, arch, calls)
    assert all(o.error is None for o in (first, single, exact))
    assert 0.0 < first.value <= math.log(9) and 0.0 < exact.value <= math.log(9)
    assert first.value != exact.value
    tensors = len(list(space.build(arch).named_parameters()))
    assert single.value == pytest.approx(tensors + first.value, abs=1e-12)
    (again,) = compute_proxies(space, arch, [("vkdnw", SettingsOverride(**QUICK))])
    assert again.value == first.value  # alone or shared, the same value
    proxy = get_proxy("vkdnw")
    assert (proxy.batch_size, proxy.data_kind, proxy.init) == (64, "synthetic", "kaiming")
    assert not proxy.needs_labels and proxy.shared_pass is get_proxy("vkdnw_single").shared_pass


def test_degenerate_nb201_cell_fails_clearly() -> None:
    space, arch = spaces.parse_arch("nb201", DEAD_ARCH, 10, 32)
    (out,) = compute_proxies(space, arch, [("vkdnw", SettingsOverride(**QUICK))])
    assert out.value is None and out.error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert out.error.message.startswith("vkdnw") and "every decile" in out.error.message


OTHER_SPACES = {
    "nats_sss": "8:16:8:24:16",
    "nb101": {"adjacency": [[0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 1, 1],
                            [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
              "ops": ["input", "conv3x3-bn-relu", "maxpool3x3", "conv1x1-bn-relu", "output"]},
    "macro": {"stem_width": 8, "head_width": 32, "stages": [
        {"kernel": 3, "expansion": 1, "width": 8, "depth": 1, "stride": 2},
        {"kernel": 5, "expansion": 2, "width": 16, "depth": 1, "stride": 2,
         "squeeze_excitation": True}]},
    "vit": {"embed_dim": 16, "depth": 1, "num_heads": [1], "mlp_ratio": [2], "patch_size": 8},
    "fbnet": " ".join(["k3_e1_g2"] + ["skip"] * 20 + ["k5_e3"]),
}


@pytest.mark.parametrize("name", list(OTHER_SPACES))
def test_other_spaces(name: str) -> None:
    space, arch = spaces.parse_arch(name, OTHER_SPACES[name], 10, 32)
    out, single = compute_proxies(space, arch, [(n, SettingsOverride(**QUICK))
                                                for n in ("vkdnw", "vkdnw_single")])
    assert out.error is None and single.error is None, (out.error, single.error)
    assert 0.0 < out.value <= math.log(9) and single.value > out.value


def test_onnx_upload() -> None:
    data = onnx_bytes(small_convnet(), torch.zeros(1, 3, 8, 8), constant_folding=False)
    space, arch = spaces.parse_arch("onnx", {"model": data, "input_name": ""}, 0, 0)
    (out,) = compute_proxies(space, arch, [("vkdnw", SettingsOverride(**QUICK))])
    assert out.error is None and 0.0 < out.value <= math.log(9), out.error


def test_logits_must_be_batch_by_classes() -> None:
    arch = ParsedArch(space="toy", canonical="toy", num_classes=10, input_resolution=4)
    toy = ToySpace(lambda: nn.Sequential(nn.Conv2d(3, 2, 1)))  # a feature map, not logits
    (out,) = compute_proxies(toy, arch, [("vkdnw", SettingsOverride(**QUICK))])
    assert out.error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "shape (batch, classes)" in out.error.message


def test_agg_is_a_log_rank_sum_of_the_papers_members() -> None:
    agg = get_composite("vkdnw_agg")
    assert agg.default_members == ("vkdnw_single", "jacob_cov", "az_expressivity",
                                   "az_trainability", "flops")
    assert agg.combine is _aggregate.log_rank_sum
    assert agg.combine([50.0, 25.0]) == pytest.approx(math.log(0.5) + math.log(0.25))
    # Members that exist in every checkout (AZ-NAS's components arrive with their own change).
    settings = composite.resolve(agg, SettingsOverride(extra={
        "proxies": "vkdnw_single,jacob_cov,flops", "fisher": "exact"}), "proxies[vkdnw_agg]")
    assert settings.names == ("vkdnw_single", "jacob_cov", "flops")
    assert settings.members[0][2].extra == {"fisher": "exact"}
