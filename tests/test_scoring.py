"""Objectives, rank normalisation, ensembles and reference populations on hand-made cases."""

from __future__ import annotations

import math

import pytest

from edgescore.grammar.base import arch_hash
from edgescore.server.errors import FailedPrecondition
from edgescore.server.proxies.base import SettingsOverride
from edgescore.server.proxies.engine import ProxyOutcome
from edgescore.server.proxies.registry import get_composite
from edgescore.server.scoring import composite, request_objective
from edgescore.server.scoring.objectives import (
    MNAS_DEFAULT_W,
    Candidate,
    constraint,
    mnas,
    pareto,
    weighted_rank,
)
from edgescore.server.scoring.population import (
    ReferencePopulation,
    nb201_sampler,
)
from edgescore.server.scoring.proxy_cache import Served
from edgescore.server.scoring.ranks import percentile, rankdata, spearman
from edgescore.server.scoring.studies import Studies, front_ranks
from edgescore.server.spaces.nb201 import SPACE
from edgescore.server.store import ProxyKey, open_store
from edgescore.v1 import common_pb2, scoring_pb2


def cand(value: float | None = None, **latency: float) -> Candidate:
    return Candidate({} if value is None else {"p": value}, latency)


def ranks(outcomes) -> list[int]:
    return [o.rank for o in outcomes]


class StandInPopulations:
    """The server's reference populations (percentiles.Populations) over given values."""

    def __init__(self, proxies: dict[str, list[float]]) -> None:
        self.proxies = proxies

    def proxy_percentile(self, arch, proxy: str, settings, value: float) -> float:
        if proxy not in self.proxies:
            raise FailedPrecondition(f"no reference population for {proxy}")
        return percentile(value, self.proxies[proxy])


def evaluate(objective: common_pb2.Objective, proxies: dict[str, float],
             latency_ms: dict[str, float], populations: StandInPopulations):
    """A Score request's objective on one candidate's values, as the servicer evaluates it."""
    request = scoring_pb2.ScoreRequest(
        proxies=[common_pb2.ProxyRequest(name=n) for n in proxies],
        devices=[common_pb2.DeviceTarget(device_class=d) for d in latency_ms], objective=objective)
    request_objective.validate(request)
    result = scoring_pb2.ScoreResult(
        proxies=[common_pb2.ProxyResult(name=n, value=v) for n, v in proxies.items()],
        latencies=[common_pb2.LatencyResult(device_class=d, stats=common_pb2.LatencyStats(
            median_ms=ms)) for d, ms in latency_ms.items()])
    return request_objective.evaluate(request, result, Studies(), arch=SPACE.parse(SPACE.example),
                                      settings={n: None for n in proxies}, populations=populations)


# ---- ranks and percentiles -----------------------------------------------------------------

def test_percentile_is_the_mid_rank_of_the_inserted_value() -> None:
    population = [1.0, 2.0, 3.0]
    assert percentile(2.0, population) == pytest.approx(50.0)  # (1 + 1/2 + 1/2) / 4
    assert percentile(0.0, population) == pytest.approx(12.5)  # never 0: MnasNet needs ACC > 0
    assert percentile(9.0, population) == pytest.approx(87.5)
    assert percentile(2.0, [3.0, 1.0, 2.0]) == percentile(2.0, population)  # order-free
    assert math.isnan(percentile(math.nan, population))


def test_rankdata_and_spearman() -> None:
    assert list(rankdata([3, 1, 3, 2])) == [3.5, 1.0, 3.5, 2.0]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    assert math.isnan(spearman([1.0], [2.0]))


# ---- constraint ----------------------------------------------------------------------------

def test_constraint_budget_edge_and_infeasible_after_feasible() -> None:
    rows = [cand(5.0, pi=10.0),     # exactly at the budget: feasible
            cand(9.0, pi=10.001),   # just over: infeasible, however good its proxy
            cand(1.0, pi=2.0),      # feasible, weak
            cand(9.0, pi=30.0),     # far over budget: after the one just over
            cand(None, pi=1.0),     # no proxy value: unranked
            cand(4.0)]              # no latency: unranked, not feasible
    out = constraint(rows, "p", {"pi": 10.0})
    assert [o.feasible for o in out] == [True, False, True, False, False, False]
    assert ranks(out) == [1, 3, 2, 4, 0, 0]
    assert out[0].value == 5.0 and out[4].error == "no proxy 'p'"
    assert out[5].error == "no latency on 'pi'"


def test_constraint_every_device_must_fit_and_ties_share_a_rank() -> None:
    budgets = {"pi": 10.0, "jetson": 2.0}
    out = constraint([cand(3.0, pi=5.0, jetson=1.0), cand(3.0, pi=9.0, jetson=2.0),
                      cand(8.0, pi=5.0, jetson=2.5)], "p", budgets)
    assert [o.feasible for o in out] == [True, True, False]
    assert ranks(out) == [1, 1, 3]
    with pytest.raises(ValueError):
        constraint([], "p", {"pi": 0.0})


# ---- MnasNet reward ------------------------------------------------------------------------

def test_mnas_reward_values() -> None:
    rows = [cand(0.5, pi=10.0), cand(0.5, pi=20.0), cand(0.5, pi=5.0), cand(0.6, pi=20.0)]
    out = mnas(rows, "p", "pi", 10.0)
    assert out[0].value == pytest.approx(0.5) and out[0].feasible
    assert out[1].value == pytest.approx(0.5 * 2 ** MNAS_DEFAULT_W) and not out[1].feasible
    assert out[2].value == pytest.approx(0.5 * 0.5 ** MNAS_DEFAULT_W)  # soft: faster is better
    assert ranks(out) == [3, 4, 2, 1]  # 0.6 * 2^-0.07 = 0.571 beats 0.5 * 0.5^-0.07 = 0.524
    hard = mnas(rows, "p", "pi", 10.0, alpha=0.0, beta=-1.0)  # MnasNet's hard constraint
    assert [o.value for o in hard] == pytest.approx([0.5, 0.25, 0.5, 0.3])
    custom = mnas(rows[:2], "p", "pi", 10.0, w=-0.5)  # v1 MnasObjective.w sets both exponents
    assert custom[1].value == pytest.approx(0.5 * 2 ** -0.5)


def test_mnas_needs_a_positive_accuracy_or_a_population() -> None:
    rows = [cand(-3.0, pi=10.0), cand(2.0, pi=10.0)]
    out = mnas(rows, "p", "pi", 10.0)
    assert "not positive" in out[0].error and out[0].rank == 0 and out[1].rank == 1
    # In Score the quality term is the percentile / 100 in the reference population.
    populations = StandInPopulations({"p": [-5.0, -4.0, 0.0, 1.0]})
    objective = common_pb2.Objective(mnas=common_pb2.MnasObjective(
        proxy="p", device_class="pi", target_latency_ms=10.0))
    normalised = [evaluate(objective, {"p": value}, {"pi": 10.0}, populations)
                  for value in (-3.0, 2.0)]
    assert normalised[0].percentiles["p"] == pytest.approx(50.0)  # (2 + 1/2) / 5
    assert normalised[0].value == pytest.approx(0.50)
    assert normalised[1].value == pytest.approx(0.90)
    objective.mnas.raw_proxy = True
    raw = evaluate(objective, {"p": -3.0}, {"pi": 10.0}, populations)
    assert "not positive" in raw.status.message and not raw.percentiles


# ---- Pareto --------------------------------------------------------------------------------

def test_pareto_fronts_with_dominated_and_duplicate_points() -> None:
    points = [(10, 5), (8, 5), (12, 9), (10, 5), (7, 10)]
    assert front_ranks(points) == [1, 2, 1, 1, 3]
    out = pareto([cand(s, pi=lat) for s, lat in points] + [cand(None, pi=1.0)], "p", "pi")
    assert [o.pareto_rank for o in out] == [1, 2, 1, 1, 3, 0]
    assert [o.value for o in out[:5]] == [-1.0, -2.0, -1.0, -1.0, -3.0]
    assert ranks(out) == [1, 4, 1, 1, 5, 0]
    assert out[5].error


# ---- weighted rank and ensembles -----------------------------------------------------------

def test_weighted_rank_trades_proxy_against_latency() -> None:
    rows = [cand(1.0, pi=1.0), cand(2.0, pi=10.0)]

    def proxy_pct(name: str, value: float) -> float:  # against the two rows' values
        return percentile(value, [1.0, 2.0])

    def latency_pct(device: str, ms: float) -> float:  # faster is higher
        return percentile(-ms, [-1.0, -10.0])

    proxy_only = [weighted_rank(r, {"p": 1.0}, {}, proxy_pct, latency_pct) for r in rows]
    assert proxy_only[1].value > proxy_only[0].value
    latency_heavy = [weighted_rank(r, {"p": 1.0}, {"pi": 3.0}, proxy_pct, latency_pct)
                     for r in rows]
    # (1/3 + 3 * 2/3) / 4 and (2/3 + 3 * 1/3) / 4 of 100
    assert [o.value for o in latency_heavy] == pytest.approx([175 / 3, 125 / 3])
    assert latency_heavy[0].percentiles == pytest.approx({"p": 100 / 3, "latency:pi": 200 / 3})
    with_population = weighted_rank(rows[0], {"p": 1.0}, {},
                                     lambda name, v: percentile(v, [0.0, 1.5, 3.0]), latency_pct)
    assert with_population.percentiles == {"p": pytest.approx(37.5)}
    assert with_population.value == pytest.approx(37.5)
    assert "no latency on 'pi'" in weighted_rank(cand(1.0), {"p": 1.0}, {"pi": 1.0}, proxy_pct,
                                                 latency_pct).error
    with pytest.raises(ValueError):
        weighted_rank(rows[0], {}, {}, proxy_pct, latency_pct)


def test_ensemble_is_a_rank_average_usable_as_a_proxy() -> None:
    ensemble = get_composite("ensemble")
    settings = composite.resolve(ensemble, SettingsOverride(extra={"proxies": "params,flops"}),
                                 "settings")
    assert settings.names == ("params", "flops")

    def value(rows: list[dict], populations: dict[str, list[float]]) -> list[float]:
        return [composite.combine(settings, row, lambda name, _, v: percentile(
            v, populations[name]))[0] for row in rows]

    rows = [{"params": 1.0, "flops": 30.0}, {"params": 2.0, "flops": 20.0},
            {"params": 3.0, "flops": 10.0}]
    batch = {"params": [1.0, 2.0, 3.0], "flops": [10.0, 20.0, 30.0]}
    assert value(rows, batch) == pytest.approx([50.0, 50.0, 50.0])  # opposite ranks cancel
    agree = [{"params": 1.0, "flops": 1.0}, {"params": 2.0, "flops": 3.0}]
    agreeing = value(agree, {"params": [1.0, 2.0], "flops": [1.0, 3.0]})
    assert agreeing[0] < 50.0 < agreeing[1]
    assert value(agree[:1], {"params": [0.0, 10.0], "flops": [0.0, 10.0]}) == pytest.approx(
        [50.0])
    extended = [Candidate({"ens": v}) for v in agreeing]
    assert ranks(constraint(extended, "ens", {})) == [2, 1]


def test_log_rank_and_geo_mean_punish_one_low_member() -> None:
    """AZ-NAS's aggregation: an arch must be good on every member (50/50 beats 90/10, which
    the mean calls equal); the geometric mean orders archs as the log-rank sum does."""
    def served(name: str, pct: tuple[float, float]) -> float:
        settings = composite.resolve(get_composite(name),
                                     SettingsOverride(extra={"proxies": "params,flops"}), "s")
        values = {"params": pct[0], "flops": pct[1]}
        return composite.combine(settings, values, lambda _n, _s, v: v)[0]

    balanced, lopsided = (50.0, 50.0), (90.0, 10.0)
    assert served("ensemble", balanced) == pytest.approx(served("ensemble", lopsided))
    assert served("log_rank", balanced) == pytest.approx(2 * math.log(0.5))
    assert served("log_rank", balanced) > served("log_rank", lopsided)
    assert served("geo_mean", balanced) == pytest.approx(50.0)
    assert served("geo_mean", lopsided) == pytest.approx(30.0)


def test_a_composite_fails_with_a_member_or_without_populations() -> None:
    settings = composite.resolve(get_composite("ensemble"),
                                 SettingsOverride(extra={"proxies": "params,flops"}), "settings")
    resolved = dict((n, r) for n, _, r in settings.members)

    def served(name: str, value: float, error=None, cached: bool = False) -> Served:
        return Served(ProxyOutcome(name, value, "", "", resolved[name], 2.0, error, ("f",)),
                      cached)

    def pct(name, _, v):
        return percentile(v, [0.0, 10.0])

    ok = composite.outcome(settings, [served("params", 5.0), served("flops", 5.0, cached=True)],
                           pct)
    assert ok.value == pytest.approx(50.0) and ok.percentiles == {"params": 50.0, "flops": 50.0}
    assert ok.seconds == 2.0 and ok.flags == ("f",)  # a stored member's time is not spent
    failed = composite.outcome(settings, [served("params", None, FailedPrecondition("boom")),
                                          served("flops", 5.0)], pct)
    assert failed.value is None and failed.error.message == "member params failed: boom"
    alone = composite.outcome(settings, [served("params", 5.0), served("flops", 5.0)], None)
    assert "no reference populations" in alone.error.message


# ---- reference populations -----------------------------------------------------------------

def test_nb201_sampler_is_seeded_uniform_and_valid() -> None:
    first = nb201_sampler(50, seed=3)
    assert first == nb201_sampler(50, seed=3) and first != nb201_sampler(50, seed=4)
    assert len(set(first)) == 50
    assert all(SPACE.parse(a).as_spelled == a for a in first)
    # One spelling per isomorphism class: 14,125 classes in the 15,625 strings.
    every = nb201_sampler(20_000, seed=0)
    assert len(every) == len({SPACE.parse(a).canonical for a in every}) == 14_125


def conv_count(arch: str) -> float:
    if "avg_pool_3x3~0|+|avg_pool" in arch:
        raise RuntimeError("this one fails")
    return float(arch.count("nor_conv_3x3")) if "skip_connect~0|+" not in arch else math.nan


def test_reference_population_computes_once_and_caches_in_store(tmp_path) -> None:
    calls: list[str] = []

    def compute(arch: str) -> float:
        calls.append(arch)
        return conv_count(arch)

    with open_store(tmp_path / "s.db") as store:
        def key_for(arch: str) -> ProxyKey:
            return ProxyKey.make(arch_hash("nb201", arch), "nb201", "convs", {"seed": 0})

        population = ReferencePopulation(compute, size=200, seed=1, store=store, key_for=key_for)
        values = population.values()
        assert len(calls) == 200 and list(values) == sorted(values)
        assert 0 < len(population) < 200  # NaN values and failures are left out
        assert population.percentile(-1.0) < 1 and population.percentile(99.0) > 99
        population.values()
        assert len(calls) == 200  # computed once
        failed = [a for a in calls if "avg_pool_3x3~0|+|avg_pool" in a]
        assert failed
        again = ReferencePopulation(compute, size=200, seed=1, store=store, key_for=key_for)
        assert list(again.values()) == list(values)
        # From the store, except the archs whose computation raised: a failure may be transient
        # (out of memory), so it is not kept and they are tried again.
        assert calls[200:] == failed
        assert all(store.get_proxy_result(key_for(a)) is None for a in failed)
    fixed = ReferencePopulation.from_values([1.0, 2.0, math.nan, 3.0])
    assert len(fixed) == 3 and fixed.percentile(2.0) == pytest.approx(50.0)
    with pytest.raises(ValueError):
        ReferencePopulation(compute, store=store)
