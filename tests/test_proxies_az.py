"""AZ-NAS: its four proxies (by hand, against the reference's numbers, on every space) and its
aggregate through the composite machinery."""

from __future__ import annotations

import math

import grpc
import numpy as np
import pytest
import torch
from conftest import SMALL_ARCHS, ToySpace, onnx_bytes
from scipy import stats
from torch import nn

from edgescore.server.errors import FailedPrecondition, NumericalFailure
from edgescore.server.proxies import _aggregate, _az
from edgescore.server.proxies.base import SettingsOverride
from edgescore.server.proxies.engine import ProxyOutcome, compute_proxies
from edgescore.server.proxies.registry import get_composite, get_proxy
from edgescore.server.scoring import composite
from edgescore.server.scoring.proxy_cache import Served
from edgescore.server.scoring.ranks import percentile
from edgescore.server.spaces import registry as spaces
from edgescore.server.spaces.base import ParsedArch

AZ = ["az_expressivity", "az_progressivity", "az_trainability", "az_complexity"]
PASS_READERS = AZ[:3]
# The best CIFAR-10 arch of NB201 (the reference notebook prints it, FLOPs 153.27 M).
BEST = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
        "+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|")
DEAD = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
IDENTITY = "|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"  # each cell computes x
OTHERS = SMALL_ARCHS
QUICK = SettingsOverride(batch_size=16)


def nb201(arch: str = BEST):
    return spaces.parse_arch("nb201", arch, 10, 32)


def other(name: str):
    spec, resolution = OTHERS[name]
    return spaces.parse_arch(name, spec, 10, resolution)


def run(space_arch, names=AZ, override=None) -> dict[str, ProxyOutcome]:
    space, arch = space_arch
    return {o.name: o for o in compute_proxies(space, arch, [(n, override) for n in names])}


def stats_of(expressivity, trainability, transformer=False) -> _az.AzStats:
    taps = tuple(f"b{i}" for i in range(len(expressivity)))
    return _az.AzStats(taps, transformer, tuple(expressivity), tuple(trainability))


# --- the formulas, by hand -----------------------------------------------------------------------

def test_expressivity_is_the_entropy_of_the_covariance_spectrum():
    # Rows +-e1, +-e2: covariance diag(1/2, 1/2), p = (1/2, 1/2), entropy log 2.
    tokens = torch.tensor([[[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]]])  # (B, N, C)
    assert _az.expressivity(tokens) == pytest.approx(math.log(2.0), abs=1e-7)
    # The same rows as a (B, C, H, W) map (B*H*W positions of C channels), plus a constant offset.
    image = tokens.reshape(1, 2, 2, 2).permute(0, 3, 1, 2) + 5.0
    assert _az.expressivity(image) == pytest.approx(math.log(2.0), abs=1e-7)
    # One direction only: p = (0, 1), entropy 0; spread 3:1: entropy of (3/4, 1/4).
    assert _az.expressivity(torch.tensor([[[1.0, 0.0], [-1.0, 0.0]]])) == pytest.approx(0.0,
                                                                                        abs=1e-7)
    skewed = torch.tensor([[[3.0 ** 0.5, 0.0], [-(3.0 ** 0.5), 0.0], [0.0, 1.0], [0.0, -1.0]]])
    assert _az.expressivity(skewed) == pytest.approx(
        -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)), abs=1e-7)
    assert math.isnan(_az.expressivity(torch.ones(2, 3, 4, 4)))  # zero covariance


def test_pair_trainability_by_hand():
    g_out = torch.tensor([1.0, -1.0, -1.0, 1.0]).view(1, 4, 1)  # 4 tokens of 1 channel
    # g_in = 2 g_out: M = [[2]], sigma 2: -2 - 1/2 + 2.
    assert _az.pair_trainability(2 * g_out, g_out) == pytest.approx(-0.5, abs=1e-6)
    assert _az.pair_trainability(g_out, g_out) == pytest.approx(0.0, abs=1e-5)  # an isometry
    # Resolution halves: g_in (1, 1, 2, 2) is unshuffled to (1, 4, 1, 1); M = outer product of
    # two all-ones 4-vectors, sigma = 2 * 2.
    assert _az.pair_trainability(torch.ones(1, 1, 2, 2), torch.ones(1, 4, 1, 1)) == \
        pytest.approx(-4.0 - 0.25 + 2.0, abs=1e-6)
    with pytest.raises(FailedPrecondition, match="whole-number stride"):
        _az.pair_trainability(torch.ones(1, 1, 3, 3), torch.ones(1, 4, 2, 2))


def test_the_three_values_from_the_pass_results():
    s = stats_of([1.0, 3.0, 2.5, 4.0], [-0.5, -0.1, -0.3])
    assert _az.expressivity_value(s) == pytest.approx(10.5)
    assert _az.progressivity_value(s) == pytest.approx(-0.5)  # min of 2, -0.5, 1.5
    assert _az.trainability_value(s) == pytest.approx(-0.3)
    with pytest.raises(NumericalFailure, match="b1 is constant"):
        _az.expressivity_value(stats_of([1.0, math.nan], [-0.5]))
    with pytest.raises(NumericalFailure, match="b1 is constant"):
        _az.progressivity_value(stats_of([1.0, math.nan], [-0.5]))


def test_where_a_value_is_not_defined():
    single = stats_of([2.0], [])  # one block: no step, no pair
    assert _az.expressivity_value(single) == 2.0
    with pytest.raises(FailedPrecondition, match="at least two feature maps"):
        _az.progressivity_value(single)
    with pytest.raises(FailedPrecondition, match="no pair"):
        _az.trainability_value(single)
    # An identity block: -inf in the CNN reference (a failure here), skipped in the ViT one.
    with pytest.raises(NumericalFailure, match=r"b1 -> b2 passes the gradient"):
        _az.trainability_value(stats_of([1.0, 2.0, 3.0], [-0.2, None]))
    vit_like = stats_of([1.0, 2.0, 3.0], [-0.2, None], transformer=True)
    assert _az.trainability_value(vit_like) == pytest.approx(-0.2)
    with pytest.raises(FailedPrecondition, match="no progressivity for transformers"):
        _az.progressivity_value(vit_like)


# --- which feature maps ----------------------------------------------------------------------

def tap_names(space_arch) -> tuple[list[str], bool]:
    space, arch = space_arch
    taps, transformer = _az.block_taps(space.build(arch))
    return [t.name for t in taps], transformer


def test_feature_maps_are_the_blocks_of_each_space():
    # NB201: the reference's extract_cell_features (stem, 15 cells and 2 reduction blocks).
    assert tap_names(nb201()) == (["stem"] + [f"cells.{i}" for i in range(17)], False)
    spec = {name: other(name) for name in OTHERS}
    assert tap_names(spec["nats_sss"]) == (["stem"] + [f"cells.{i}" for i in range(5)], False)
    # NB-101: the max-pools between stacks (cells.3 and cells.7) hold no parameters: not blocks.
    assert tap_names(spec["nb101"]) == (
        ["stem"] + [f"cells.{i}" for i in (0, 1, 2, 4, 5, 6, 8, 9, 10)], False)
    assert tap_names(spec["macro"]) == (
        ["stem", "stages.0.0", "stages.1.0", "stages.1.1", "head"], False)
    # FBNet: identity skips are not blocks; the 1x1-conv skips where the shape changes are.
    assert tap_names(spec["fbnet"]) == (
        ["stem"] + [f"layers.{i}" for i in (0, 1, 5, 6, 9, 13, 14, 17, 21)] + ["head"], False)
    assert tap_names(spec["vit"]) == (
        ["blocks.0.attention_residual", "blocks.0", "blocks.1.attention_residual", "blocks.1"],
        True)
    with pytest.raises(FailedPrecondition, match="blocks of this network"):
        _az.block_taps(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()))


def test_the_vit_attention_residual_is_the_sum_after_attention():
    space, arch = other("vit")
    net = space.build(arch)
    taps, _ = _az.block_taps(net)
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    feats = _az.feature_maps(net, x, taps)
    h = net.patch_embed(x).flatten(2).transpose(1, 2)
    h = torch.cat((net.cls_token.expand(2, -1, -1), h), 1) + net.pos_embed
    block = net.blocks[0]
    after_attention = h + block.attn(block.attn_norm(h))
    torch.testing.assert_close(feats[0], after_attention)
    after_mlp = after_attention + block.mlp(block.mlp_norm(after_attention))
    torch.testing.assert_close(feats[1], after_mlp)


# --- through the engine ----------------------------------------------------------------------

def test_metadata():
    for name in PASS_READERS:
        proxy = get_proxy(name)
        assert proxy.shared_pass is _az.AZ_NAS and not proxy.mutates_network
        assert (proxy.batch_size, proxy.data_kind, proxy.init) == (64, "synthetic", "kaiming")
        assert proxy.needs_data and not proxy.needs_labels and proxy.transform == "none"
    complexity, flops = get_proxy("az_complexity"), get_proxy("flops")
    assert complexity.compute is flops.compute and complexity.shared_pass is None


def test_nb201_values_are_the_references():
    """The reference (cvlab-yonsei/AZ-NAS NB201/ZeroShotProxy/compute_az_nas_score.py, run once
    outside the suite on the engine's network for seed 0 after its kaiming_norm_fanin init, the
    same Gaussian batch of 64 and the same Rademacher signs) gave these float32 values; the pass
    computes in float64."""
    out = run(nb201())
    assert all(o.error is None for o in out.values()), out
    assert out["az_expressivity"].value == pytest.approx(54.772693395614624, rel=1e-6)
    assert out["az_progressivity"].value == pytest.approx(-0.19325733184814453, rel=1e-5)
    assert out["az_trainability"].value == pytest.approx(-0.0716765970019073, rel=1e-5)
    assert out["az_complexity"].value == 153_272_960.0  # NATS-Bench: 153.27 M
    settings = out["az_expressivity"].settings
    assert (settings.batch_size, settings.data_kind, settings.init) == (64, "synthetic", "kaiming")


def test_one_pass_for_the_three_and_the_same_values_alone(monkeypatch):
    forwards = []
    real = _az.feature_maps

    def counting(*args):
        forwards.append(1)
        return real(*args)

    monkeypatch.setattr(_az, "feature_maps", counting)
    together = run(nb201(), override=QUICK)
    assert len(forwards) == 1
    for name in PASS_READERS:
        (alone,) = run(nb201(), [name], QUICK).values()
        assert alone.value == together[name].value
    assert len(forwards) == 4
    # Another seed: another network, batch and signs, so another pass and other values.
    reseeded = run(nb201(), PASS_READERS, SettingsOverride(batch_size=16, seed=1))
    assert reseeded["az_expressivity"].value != together["az_expressivity"].value


def test_degenerate_nb201_cells_fail_per_item():
    dead = run(nb201(DEAD), PASS_READERS, QUICK)
    for name in ("az_expressivity", "az_progressivity"):
        assert dead[name].error.code == grpc.StatusCode.FAILED_PRECONDITION
        assert "cells.0 is constant" in dead[name].error.message
    # The 15 cells' Jacobians are zero: sigma 0, each such pair -1/(0 + 1e-6) + 2, as the
    # reference computes; the 2 reduction blocks pass the gradient through their 1x1 shortcut.
    assert dead["az_trainability"].value == pytest.approx(15 / 17 * (-1e6 + 2), rel=1e-5)
    identity = run(nb201(IDENTITY), PASS_READERS, QUICK)
    assert identity["az_expressivity"].error is None
    assert identity["az_trainability"].error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "identity block" in identity["az_trainability"].error.message


@pytest.mark.parametrize("name", list(OTHERS))
def test_every_other_space(name):
    out = run(other(name), override=SettingsOverride(batch_size=8))
    for proxy, outcome in out.items():
        if (name, proxy) == ("vit", "az_progressivity"):
            assert outcome.error.code == grpc.StatusCode.FAILED_PRECONDITION
            assert outcome.error.message.startswith("az_progressivity: AZ-NAS defines no "
                                                    "progressivity for transformers")
        else:
            assert outcome.error is None, (proxy, outcome.error)
            assert math.isfinite(outcome.value)
    flops = run(other(name), ["flops"])["flops"].value
    assert out["az_complexity"].value == flops


def test_an_uploaded_graph_has_no_known_blocks():
    space, arch = nb201()
    torch.manual_seed(0)
    data = onnx_bytes(space.build(arch), torch.zeros(1, 3, 32, 32), constant_folding=False)
    upload = spaces.parse_arch("onnx", {"model": data, "input_name": ""}, 0, 0)
    out = run(upload, override=SettingsOverride(batch_size=4))
    for name in PASS_READERS:
        assert out[name].error.code == grpc.StatusCode.FAILED_PRECONDITION
        assert out[name].error.message.startswith(f"{name}: shared pass 'az_nas' failed: AZ-NAS "
                                                  "reads the output of every block")
    assert out["az_complexity"].value == upload[0].static_proxy(upload[1], "flops")
    # A hand-made network (no space's blocks) fails the same way.
    toy = ParsedArch(space="toy", canonical="toy", num_classes=10, input_resolution=4)
    (failed,) = compute_proxies(ToySpace(lambda: nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(16, 10))), toy,
        [("az_expressivity", QUICK)])
    assert failed.error.code == grpc.StatusCode.FAILED_PRECONDITION


# --- the aggregate ---------------------------------------------------------------------------

def test_az_nas_is_the_papers_log_rank_sum():
    az = get_composite("az_nas")
    assert az.combine is _aggregate.log_rank_sum
    settings = composite.resolve(az, SettingsOverride(), "settings")
    assert settings.names == tuple(AZ)
    resolved = {n: r for n, _, r in settings.members}
    assert resolved["az_expressivity"].init == "kaiming" and resolved["az_complexity"].init == \
        "default"
    # Five candidates, each member's population being the candidates' own values (ties included).
    rng = np.random.default_rng(0)
    table = {n: rng.integers(0, 4, size=5).astype(float) for n in AZ}
    got = [composite.combine(settings, {n: table[n][i] for n in AZ},
                             lambda name, _, v: percentile(v, table[name]))[0]
           for i in range(5)]
    # The reference notebook: sum over the four of np.log(stats.rankdata(x) / l). With the
    # candidates as the population, p / 100 = rank / (l + 1): the same sum less 4 log((l+1)/l).
    paper = sum(np.log(stats.rankdata(table[n]) / 5) for n in AZ)
    assert got == pytest.approx(paper - 4 * math.log(6 / 5), abs=1e-12)


def test_az_nas_on_a_vit_takes_three_members_and_names_a_failed_one():
    az = get_composite("az_nas")
    three = composite.resolve(az, SettingsOverride(extra={
        "proxies": "az_expressivity,az_trainability,az_complexity"}), "settings")
    assert three.names == ("az_expressivity", "az_trainability", "az_complexity")
    four = composite.resolve(az, SettingsOverride(batch_size=8), "settings")
    space, arch = other("vit")
    outcomes = compute_proxies(space, arch, [(n, o) for n, o, _ in four.members])
    failed = composite.outcome(four, [Served(o, False) for o in outcomes],
                               lambda name, _, v: 50.0)
    assert failed.value is None
    assert failed.error.message.startswith("member az_progressivity failed: az_progressivity: "
                                           "AZ-NAS defines no progressivity")
    ok = composite.outcome(four, [Served(o, False) if o.error is None else Served(
        ProxyOutcome(o.name, 1.0, o.unit, o.transform, o.settings, 0.0), False)
        for o in outcomes], lambda name, _, v: 50.0)
    assert ok.value == pytest.approx(4 * math.log(0.5))
