"""Objectives in Score: hand-made cases on HW-NAS-Bench replay latencies (known exactly)."""

from __future__ import annotations

import random

import grpc
import pytest
from conftest import SHARED

from edgescore.client import EdgescoreError
from edgescore.client.launcher import LocalStack
from edgescore.device_agent.replay import ReplayTable
from edgescore.server.scoring.studies import front_ranks
from edgescore.v1 import common_pb2

HW_CSV = SHARED / "data" / "nb201" / "hw_nas_bench_c10_dev.csv"
# Three archs the table has, in its order (values differ in both params and latency).
ARCHS = list(ReplayTable(HW_CSV, "raspi4").latency_ms)[:3]


def test_front_ranks_follow_the_definition_on_random_points() -> None:
    """Front k holds the points dominated by none of fronts k, k+1, ... but by one of front k-1
    (a dominates b: no worse in both, better in one; equal points share a front)."""
    def dominates(a: tuple, b: tuple) -> bool:
        return a[0] >= b[0] and a[1] <= b[1] and a != b

    rng = random.Random(0)
    for _ in range(50):
        n = rng.randint(1, 30)
        pts = [(float(rng.randint(0, 5)), float(rng.randint(0, 5))) for _ in range(n)]
        ranks = front_ranks(pts)
        for i, rank in enumerate(ranks):
            assert not any(dominates(pts[j], pts[i]) for j in range(n) if ranks[j] >= rank)
            assert rank == 1 or any(dominates(pts[j], pts[i])
                                    for j in range(n) if ranks[j] == rank - 1)


@pytest.fixture(scope="module")
def replay_stack():
    table = ReplayTable(HW_CSV, "raspi4")
    latency = {arch: table.latency_of(arch) for arch in ARCHS}
    with LocalStack(agents={}, server_args=["--population-size", "30"]) as stack:
        stack.start_agent("raspi4", extra=["--replay", "hw-nas-bench", "--csv", str(HW_CSV),
                                           "--device", "raspi4"])
        stack.wait_for_agents({"raspi4": 1})
        with stack.client(timeout=300) as client:
            yield client, latency


def score(client, arch, objective):
    return client.score(arch, ["params"], ["raspi4"], objective=objective)


def test_constraint_budget_edge_is_feasible_and_just_below_is_not(replay_stack) -> None:
    client, latency = replay_stack
    arch = ARCHS[0]
    at = common_pb2.Objective(constraint=common_pb2.ConstraintObjective(
        proxy="params", latency_budget_ms={"raspi4": latency[arch]}))
    result = score(client, arch, at)
    assert result.objective.feasible and result.objective.value == result.proxies["params"].value
    below = common_pb2.Objective(constraint=common_pb2.ConstraintObjective(
        proxy="params", latency_budget_ms={"raspi4": latency[arch] * (1 - 1e-9)}))
    assert not score(client, arch, below).objective.feasible


def _population_percentile(value: float, proxy: str = "params") -> float:
    """`value`'s percentile among `proxy` over the server's population (30 seeded random NB201
    cells), computed here independently of the server."""
    from edgescore.server.scoring.population import nb201_sampler
    from edgescore.server.scoring.ranks import percentile
    from edgescore.server.spaces.nb201 import SPACE

    assert proxy == "params"
    population = [sum(p.numel() for p in SPACE.build(SPACE.parse(a)).parameters())
                  for a in nb201_sampler(30, 0)]
    return percentile(value, population)


def test_mnas_reward_by_hand(replay_stack) -> None:
    client, latency = replay_stack
    arch, target = ARCHS[1], 20.0
    mnas = common_pb2.MnasObjective(proxy="params", device_class="raspi4",
                                    target_latency_ms=target)
    result = score(client, arch, common_pb2.Objective(mnas=mnas))
    # The quality term is the percentile / 100 (scale-free, positive)...
    pct = _population_percentile(result.proxies["params"].value)
    assert result.objective.percentiles["params"] == pytest.approx(pct)
    assert result.objective.value == pytest.approx(pct / 100 * (latency[arch] / target) ** -0.07)
    assert result.objective.feasible == (latency[arch] <= target)
    # ... or the raw value when asked.
    mnas.raw_proxy = True
    result = score(client, arch, common_pb2.Objective(mnas=mnas))
    params = result.proxies["params"].value
    assert result.objective.value == pytest.approx(params * (latency[arch] / target) ** -0.07)
    assert not result.objective.percentiles


def test_constraint_reports_percentiles_when_asked(replay_stack) -> None:
    client, latency = replay_stack
    arch = ARCHS[2]
    constraint = common_pb2.ConstraintObjective(proxy="params",
                                                latency_budget_ms={"raspi4": 1e6})
    plain = score(client, arch, common_pb2.Objective(constraint=constraint))
    assert not plain.objective.percentiles
    asked = score(client, arch, common_pb2.Objective(constraint=constraint,
                                                     report_percentiles=True))
    assert asked.objective.value == plain.objective.value
    assert asked.objective.percentiles["params"] == pytest.approx(
        _population_percentile(asked.proxies["params"].value))


def test_ensemble_is_a_proxy_of_its_own(replay_stack) -> None:
    client, _ = replay_stack
    members = "params,flops"
    ens = common_pb2.ProxyRequest(name="ensemble", settings=common_pb2.ProxySettings(
        extra={"proxies": members}))
    result = client.score(ARCHS[0], ["params", ens], ["raspi4"], objective=common_pb2.Objective(
        pareto=common_pb2.ParetoObjective(proxy="ensemble", device_class="raspi4")))
    e = result.proxies["ensemble"]
    assert e.ok, e.message
    assert set(e.components) == {"params", "flops"}
    assert e.components["params"] == pytest.approx(
        _population_percentile(result.proxies["params"].value))
    assert e.value == pytest.approx(sum(e.components.values()) / 2)
    assert result.objective.pareto_rank == 1
    # Usable in objectives, listed by ListProxies, and bad member lists name the field.
    assert "ensemble" in {p.name for p in client.proxies()}
    for bad in ("params", "params,nope", "params,params", "params,ensemble"):
        ens.settings.extra["proxies"] = bad
        with pytest.raises(EdgescoreError) as err:
            client.score(ARCHS[0], [ens])
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "extra[proxies]" in str(err.value)


def test_pareto_rank_within_a_named_study(replay_stack) -> None:
    client, latency = replay_stack
    objective = common_pb2.Objective(pareto=common_pb2.ParetoObjective(
        proxy="params", device_class="raspi4", study=f"s{random.random()}"))
    seen, ranks = [], []
    for arch in ARCHS:
        result = score(client, arch, objective)
        seen.append((result.proxies["params"].value, latency[arch]))
        ranks.append(result.objective.pareto_rank)
        assert ranks[-1] == front_ranks(seen)[-1]  # its front among the study so far
    alone = score(client, ARCHS[2], common_pb2.Objective(pareto=common_pb2.ParetoObjective(
        proxy="params", device_class="raspi4")))
    assert alone.objective.pareto_rank == 1  # no study: the request is its own batch


def test_a_study_name_keeps_one_front_per_proxy_and_device() -> None:
    """Points of another proxy are on another scale: they never share a front."""
    from edgescore.server.scoring.studies import Studies

    studies = Studies()
    assert studies.add_and_rank("s", (10.0, 1.0), "params", "pi") == 1
    assert studies.add_and_rank("s", (5.0, 2.0), "params", "pi") == 2  # dominated
    assert studies.add_and_rank("s", (5.0, 2.0), "synflow", "pi") == 1  # its own study
    assert studies.add_and_rank("s", (5.0, 2.0), "params", "pixel3") == 1


def test_weighted_rank_is_the_weighted_mean_of_reference_percentiles(replay_stack) -> None:
    client, latency = replay_stack
    for arch in ARCHS:  # measured (and stored) latencies of the class: the latency reference
        assert score(client, arch, None).latencies["raspi4"].ok
    objective = common_pb2.Objective(weighted_rank=common_pb2.WeightedRankObjective(
        proxy_weights={"params": 3.0}, latency_weights={"raspi4": 1.0}))
    result = score(client, ARCHS[0], objective)
    pct = result.objective.percentiles
    assert result.objective.code == grpc.StatusCode.OK, result.objective.message
    assert pct["params"] == pytest.approx(_population_percentile(result.proxies["params"].value))
    from edgescore.server.scoring.ranks import percentile

    measured = [latency[a] for a in ARCHS]
    assert pct["latency:raspi4"] == pytest.approx(
        percentile(-latency[ARCHS[0]], [-m for m in measured]))
    assert result.objective.value == pytest.approx((3 * pct["params"] + pct["latency:raspi4"]) / 4)


@pytest.mark.parametrize("objective, code, field", [
    (common_pb2.Objective(mnas=common_pb2.MnasObjective(proxy="synflow", device_class="raspi4",
                                                        target_latency_ms=5)),
     grpc.StatusCode.INVALID_ARGUMENT, "objective.mnas.proxy"),
    (common_pb2.Objective(constraint=common_pb2.ConstraintObjective(
        proxy="params", latency_budget_ms={"pixel3": 5})),
     grpc.StatusCode.INVALID_ARGUMENT, "objective.constraint.latency_budget_ms"),
    (common_pb2.Objective(mnas=common_pb2.MnasObjective(proxy="params", device_class="raspi4")),
     grpc.StatusCode.INVALID_ARGUMENT, "objective.mnas.target_latency_ms"),
    # inf made the ratio 0 and 0 ** w raised; a huge w overflowed: both were INTERNAL
    (common_pb2.Objective(mnas=common_pb2.MnasObjective(
        proxy="params", device_class="raspi4", target_latency_ms=float("inf"))),
     grpc.StatusCode.INVALID_ARGUMENT, "objective.mnas.target_latency_ms"),
    (common_pb2.Objective(mnas=common_pb2.MnasObjective(
        proxy="params", device_class="raspi4", target_latency_ms=5, w=1000)),
     grpc.StatusCode.INVALID_ARGUMENT, "objective.mnas.w"),
    (common_pb2.Objective(weighted_rank=common_pb2.WeightedRankObjective(
        proxy_weights={"synflow": 1})), grpc.StatusCode.INVALID_ARGUMENT,
     "objective.weighted_rank.proxy_weights"),
    (common_pb2.Objective(weighted_rank=common_pb2.WeightedRankObjective(
        proxy_weights={"params": 0})), grpc.StatusCode.INVALID_ARGUMENT,
     "objective.weighted_rank.proxy_weights"),
])
def test_bad_objectives_fail_the_request_naming_the_field(replay_stack, objective, code,
                                                         field) -> None:
    client, _ = replay_stack
    with pytest.raises(EdgescoreError) as err:
        score(client, ARCHS[0], objective)
    assert err.value.code == code and field in str(err.value)


@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), 1e300, -1.0])
def test_latency_timeout_must_be_a_sane_number(replay_stack, timeout: float) -> None:
    """inf and 1e300 once escaped as INTERNAL (after queuing the job); NaN meant 0 s."""
    client, _ = replay_stack
    with pytest.raises(EdgescoreError) as err:
        client.score(ARCHS[0], ["params"], ["raspi4"], latency_timeout=timeout, no_cache=True)
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "latency_timeout_seconds" in err.value.details


def test_unknown_data_source_kind_is_refused(replay_stack) -> None:
    """An enum number this server does not know once ran on the proxy's default data."""
    client, _ = replay_stack
    bad = common_pb2.ProxyRequest(name="grad_norm", settings=common_pb2.ProxySettings(
        data=common_pb2.DataSource(kind=99)))
    with pytest.raises(EdgescoreError) as err:
        client.score(ARCHS[0], [bad])
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "settings.data.kind" in err.value.details
    with pytest.raises(EdgescoreError) as err:
        client.score(ARCHS[0], ["grad_norm"], proxy_settings={"data": {"kind": 99}})
    assert "proxy_defaults.data.kind" in err.value.details


def test_mnas_reward_with_a_zero_latency_is_a_failed_item_not_a_crash() -> None:
    from edgescore.server.scoring.objectives import Candidate, mnas

    (outcome,) = mnas([Candidate(proxies={"p": 0.5}, latency_ms={"pi": 0.0})], "p", "pi", 5.0)
    assert outcome.error and "not positive" in outcome.error


def test_latency_percentiles_rank_among_networks_of_the_same_shape(tmp_path) -> None:
    """A 64x64 network's latency is ranked among 64x64 measurements, not the 32x32 ones, and
    a batch-64 one among batch-64 measurements."""
    import numpy as np

    from edgescore.server.errors import FailedPrecondition
    from edgescore.server.scoring.percentiles import Populations
    from edgescore.server.scoring.proxy_cache import ProxyCache
    from edgescore.server.scoring.ranks import percentile
    from edgescore.server.spaces.nb201 import SPACE
    from edgescore.server.store import MeasurementKey, open_store

    with open_store(tmp_path / "s.db") as store:
        rows = [(1.0, None), (2.0, None), (3.0, [10, 32]), (10.0, [10, 64]), (20.0, [10, 64])]
        for i, (median, shape) in enumerate(rows):
            stats = {"median_ms": median, **({"arch_shape": shape} if shape else {})}
            store.put_measurement(MeasurementKey.make(f"{i:064x}", "pi", "ort", "1"), stats,
                                  space="nb201", arch=ARCHS[0])
        # Batch 64 is another workload: never ranked with the batch-1 rows.
        store.put_measurement(MeasurementKey.make("9" * 64, "pi", "ort", "1", {"batch_size": 64}),
                              {"median_ms": 100.0}, space="nb201", arch=ARCHS[0])
        populations = Populations(store, ProxyCache(store, "cpu"))
        at = {shape: SPACE.parse(ARCHS[0], *shape) for shape in ((10, 32), (10, 64), (100, 32))}
        assert populations.latency_percentile("pi", at[(10, 32)], 1.5) == percentile(
            -1.5, -np.array([1.0, 2.0, 3.0]))
        assert populations.latency_percentile("pi", at[(10, 64)], 15.0) == percentile(
            -15.0, -np.array([10.0, 20.0]))
        with pytest.raises(FailedPrecondition, match="64x64|32x32"):
            populations.latency_percentile("pi", at[(100, 32)], 1.5)
        batch64 = {"batch_size": 64}
        assert populations.latency_percentile("pi", at[(10, 32)], 50.0, batch64) == percentile(
            -50.0, -np.array([100.0]))
