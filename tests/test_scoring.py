"""Objectives, rank normalisation, ensembles and reference populations on hand-made cases."""

from __future__ import annotations

import math

import pytest

from edgescore.server.scoring.objectives import (
    MNAS_DEFAULT_W,
    Candidate,
    constraint,
    ensemble,
    mnas,
    pareto,
    pareto_fronts,
    weighted_rank,
    with_ensemble,
)
from edgescore.server.scoring.population import (
    ReferencePopulation,
    nb201_sampler,
    store_key_for,
)
from edgescore.server.scoring.ranks import batch_percentiles, percentile, rankdata, spearman
from edgescore.server.spaces.nb201 import SPACE
from edgescore.server.store import open_store


def cand(value: float | None = None, **latency: float) -> Candidate:
    return Candidate({} if value is None else {"p": value}, latency)


def ranks(outcomes) -> list[int]:
    return [o.rank for o in outcomes]


# ---- ranks and percentiles -----------------------------------------------------------------

def test_percentile_is_the_mid_rank_of_the_inserted_value() -> None:
    population = [1.0, 2.0, 3.0]
    assert percentile(2.0, population) == pytest.approx(50.0)  # (1 + 1/2 + 1/2) / 4
    assert percentile(0.0, population) == pytest.approx(12.5)  # never 0: MnasNet needs ACC > 0
    assert percentile(9.0, population) == pytest.approx(87.5)
    assert percentile(2.0, [3.0, 1.0, 2.0]) == percentile(2.0, population)  # order-free
    assert math.isnan(percentile(math.nan, population))
    # Each against the others of its batch: 3.0 against {1, 3}, 1.0 against {3, 3}.
    assert batch_percentiles([3.0, None, 1.0, 3.0]) == pytest.approx(
        [200 / 3, math.nan, 50 / 3, 200 / 3], nan_ok=True)


def test_rankdata_and_spearman() -> None:
    assert list(rankdata([3, 1, 3, 2])) == [3.5, 1.0, 3.5, 2.0]
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))


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
    population = {"p": [-5.0, -4.0, 0.0, 1.0]}
    normalised = mnas(rows, "p", "pi", 10.0, populations=population)
    assert normalised[0].percentiles["p"] == pytest.approx(50.0)  # (2 + 1/2) / 5
    assert normalised[0].value == pytest.approx(0.50)
    assert normalised[1].value == pytest.approx(0.90)
    assert ranks(normalised) == [2, 1]


# ---- Pareto --------------------------------------------------------------------------------

def test_pareto_fronts_with_dominated_and_duplicate_points() -> None:
    points = [(10, 5), (8, 5), (12, 9), (10, 5), (7, 10)]
    assert pareto_fronts(points) == [1, 2, 1, 1, 3]
    out = pareto([cand(s, pi=lat) for s, lat in points] + [cand(None, pi=1.0)], "p", "pi")
    assert [o.pareto_rank for o in out] == [1, 2, 1, 1, 3, 0]
    assert [o.value for o in out[:5]] == [-1.0, -2.0, -1.0, -1.0, -3.0]
    assert ranks(out) == [1, 4, 1, 1, 5, 0]
    assert out[5].error


# ---- weighted rank and ensembles -----------------------------------------------------------

def test_weighted_rank_trades_proxy_against_latency() -> None:
    rows = [cand(1.0, pi=1.0), cand(2.0, pi=10.0)]
    proxy_only = weighted_rank(rows, {"p": 1.0}, {})
    assert ranks(proxy_only) == [2, 1]
    latency_heavy = weighted_rank(rows, {"p": 1.0}, {"pi": 3.0})
    assert [o.value for o in latency_heavy] == pytest.approx([62.5, 37.5])
    assert ranks(latency_heavy) == [1, 2]
    with_population = weighted_rank(rows, {"p": 1.0}, {}, populations={"p": [0.0, 1.5, 3.0]})
    assert with_population[0].percentiles == {"p": pytest.approx(37.5)}
    assert with_population[0].value == pytest.approx(37.5)
    with pytest.raises(ValueError):
        weighted_rank(rows, {}, {})


def test_ensemble_is_a_rank_average_usable_as_a_proxy() -> None:
    rows = [Candidate({"a": 1.0, "b": 30.0}), Candidate({"a": 2.0, "b": 20.0}),
            Candidate({"a": 3.0, "b": 10.0}), Candidate({"a": 4.0})]
    values = ensemble(rows, ["a", "b"])
    assert values[:3] == pytest.approx([50.0, 50.0, 50.0])  # opposite ranks cancel
    assert math.isnan(values[3])
    agree = [Candidate({"a": 1.0, "b": 1.0}), Candidate({"a": 2.0, "b": 3.0})]
    assert ensemble(agree, ["a", "b"]) == pytest.approx([25.0, 75.0])
    populations = {"a": [0.0, 10.0], "b": [0.0, 10.0]}
    assert ensemble(agree[:1], ["a", "b"], populations) == pytest.approx([50.0])
    extended = with_ensemble(agree, "ens", ["a", "b"])
    assert ranks(constraint(extended, "ens", {})) == [2, 1]


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
        key_for = store_key_for("nb201", "convs", {"seed": 0})
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
