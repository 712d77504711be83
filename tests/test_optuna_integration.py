"""edgescore.integrations.optuna without a server: Optuna's real samplers map trials to valid
specs of every space with a sampler; the objective reports failures as FAIL trials, attaches the
result, skips repeats and rejected archs; a study in a storage resumes. The client is a stand-in
that answers from the spec (the end-to-end runs are in test_optuna_search.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from edgescore.client.errors import EdgescoreError
from edgescore.client.results import ScoreResult
from edgescore.client.search import SearchConfig
from edgescore.client.search_report import hypervolume
from edgescore.grammar import GRAMMARS, SpecError, nb201
from edgescore.integrations.optuna import (
    CONSTRAINT,
    SPEC_OF_TRIAL,
    Objective,
    make_sampler,
    optimize,
    run_study,
    spec_from_trial,
    spec_key,
)
from edgescore.v1 import common_pb2, scoring_pb2

optuna = pytest.importorskip("optuna")
TrialState = optuna.trial.TrialState
OK, FAILED = common_pb2.ItemStatus(code=0), common_pb2.ItemStatus(code=3, message="score is 0")


@pytest.fixture(autouse=True)
def quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)


@pytest.mark.parametrize("algo", ["random", "tpe", "nsga2"])
@pytest.mark.parametrize("space", sorted(GRAMMARS))
def test_trials_map_to_valid_specs_of_every_space(space: str, algo: str) -> None:
    specs: list[Any] = []

    def objective(trial: optuna.Trial) -> float:
        spec = spec_from_trial(trial, space)  # nb101: SpecError for a draw that is no cell
        parsed = GRAMMARS[space].parse(spec)
        # The parameters are the arch: replayed alone, they give the same spec.
        assert spec_from_trial(optuna.trial.FixedTrial(trial.params), space) == spec
        specs.append(spec)
        return int(parsed.arch_hash[:6], 16) / 16**6

    study = optuna.create_study(sampler=make_sampler(algo, seed=0, population=8))
    study.optimize(objective, n_trials=24, catch=(SpecError,))
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(specs) + len(failed) == 24
    if space == "nb101":  # rejection, about 27 % of uniform draws
        assert len(specs) >= 12
    else:
        assert not failed
    assert len({spec_key(s) for s in specs}) >= len(specs) // 2


def test_every_grammar_choice_is_reachable() -> None:
    """The mappings draw from the grammar's own choices: NB201's five ops on every edge."""
    seen: dict[str, set[str]] = {}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(lambda t: float(len(spec_from_trial(t, "nb201"))), n_trials=60)
    for t in study.trials:
        for name, op in t.params.items():
            seen.setdefault(name, set()).add(op)
    assert seen == {f"edge_{j}_{i}": set(nb201.OPS) for j, i in nb201.EDGES}
    assert set(SPEC_OF_TRIAL) == set(GRAMMARS)
    with pytest.raises(ValueError, match="onnx"):
        spec_from_trial(optuna.trial.FixedTrial({}), "onnx")


COST = {"none": 0.0, "skip_connect": 0.1, "avg_pool_3x3": 0.5, "nor_conv_1x1": 1.0,
        "nor_conv_3x3": 3.0}


class FakeClient:
    """Answers like the server would: synflow grows with the convs, latency with their cost;
    an all-`none` cell's synflow fails (score 0), `fail_calls` archs fail the whole call."""

    def __init__(self, fail_calls: frozenset[str] = frozenset()) -> None:
        self.calls: list[Any] = []
        self.fail_calls = fail_calls

    def score(self, spec: Any, proxies: list[str], devices: list[str], **options: Any
              ) -> ScoreResult:
        self.calls.append(spec)
        if spec in self.fail_calls:
            raise EdgescoreError(grpc.StatusCode.UNAVAILABLE, "server went away")
        ops = [op for node in nb201.parse_arch_string(spec) for op, _ in node]
        cost = sum(COST[op] for op in ops)
        value = cost + 0.01 * ops.count("skip_connect")
        proxy = common_pb2.ProxyResult(name="synflow", value=value, status=OK if cost else FAILED,
                                       provenance=1)
        stats = common_pb2.LatencyStats(n=1, median_ms=2.0 + cost, mean_ms=2.0 + cost,
                                        p90_ms=2.0 + cost)
        latency = common_pb2.LatencyResult(device_class="raspi4", status=OK, stats=stats,
                                           provenance=2, runtime="hw-nas-bench-replay")
        result = scoring_pb2.ScoreResult(canonical_arch=GRAMMARS["nb201"].parse(spec).canonical,
                                         proxies=[proxy], latencies=[latency])
        if options.get("objective") is not None:
            budget = options["objective"].constraint.latency_budget_ms["raspi4"]
            result.objective.CopyFrom(common_pb2.ObjectiveResult(
                value=proxy.value, feasible=2.0 + cost <= budget, status=OK))
        return ScoreResult.from_pb(result)


def fixed(ops: list[str]) -> dict[str, str]:
    return {f"edge_{j}_{i}": op for (j, i), op in zip(nb201.EDGES, ops)}


def test_objective_values_attrs_failures_repeats_and_rejections() -> None:
    conv = ["nor_conv_3x3"] * 6
    empty = ["none"] * 6
    gone = nb201.cell_string(["skip_connect"] * 6)
    outside = nb201.cell_string(["avg_pool_3x3"] * 6)
    client = FakeClient(fail_calls=frozenset({gone}))
    config = SearchConfig(algo="nsga2", proxy="synflow", device="raspi4", latency_ms=25.0,
                          objective="pareto")
    allowed = {nb201.cell_string(conv), nb201.cell_string(empty), gone}
    objective = Objective(client, config, within=allowed)
    assert objective.directions == ["maximize", "minimize"]
    study = optuna.create_study(directions=objective.directions)
    for ops in (conv, empty, ["skip_connect"] * 6, ["avg_pool_3x3"] * 6, conv, empty):
        study.enqueue_trial(fixed(ops))
    optimize(study, objective, n_trials=6)
    ok, empty_t, gone_t, outside_t, again, empty_again = study.trials
    # A scored candidate: its values, the result as user attrs, the budget as a constraint.
    assert ok.state == TrialState.COMPLETE and ok.values == [18.0, 20.0]
    assert ok.user_attrs["canonical_arch"] == nb201.cell_string(conv)
    assert ok.user_attrs["proxy"] == {"name": "synflow", "value": 18.0, "provenance": "COMPUTED"}
    latency = ok.user_attrs["latency"]
    assert latency["median_ms"] == 20.0 and latency["provenance"] == "MEASURED"
    assert latency["n"] == 1 and latency["runtime"] == "hw-nas-bench-replay"
    assert ok.user_attrs["evaluated"] and ok.user_attrs["feasible"] is True
    assert ok.constraints == {CONSTRAINT: -5.0}
    # A failed proxy and a failed call are FAIL trials with the reason, never values.
    for failed, reason in ((empty_t, "proxy synflow"), (gone_t, "UNAVAILABLE")):
        assert failed.state == TrialState.FAIL and failed.values is None
        assert failed.user_attrs["evaluated"] and reason in failed.user_attrs["error"]
    # Outside the allowed archs: rejected before any call.
    assert outside_t.state == TrialState.FAIL and not outside_t.user_attrs["evaluated"]
    assert "within" in outside_t.user_attrs["rejected"] and outside not in client.calls
    # Repeats cost no call: the first trial's values (or its failure) again.
    assert again.state == TrialState.COMPLETE and again.values == ok.values
    assert again.user_attrs["duplicate_of"] == ok.number and again.constraints == ok.constraints
    assert empty_again.state == TrialState.FAIL
    assert len(client.calls) == 3 and objective.evaluations == 3
    assert [t.number for t in study.best_trials] == [ok.number, again.number]


def test_run_study_spends_the_budget_on_new_archs_and_resumes(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    client = FakeClient()
    config = SearchConfig(algo="nsga2", budget=12, proxy="synflow", device="raspi4",
                          population=6, max_in_flight=1)
    first = run_study(client, config, storage=storage)  # type: ignore[arg-type]
    assert config.resolved_objective() == "pareto"
    assert len(first.result.records) == 12 == first.evaluated_now == len(client.calls)
    assert len({r.arch for r in first.result.records}) == 12
    assert first.study_name == "edgescore-nb201-nsga2-synflow-raspi4-pareto-seed0"
    front = {t.user_attrs["arch"] for t in first.study.best_trials}
    assert front and front <= {r.arch for r in first.result.records}
    trials = len(first.study.trials)
    assert not first.rejected  # one job: the study stops as the budget is spent
    # A second run of the same search continues the study: 8 evaluations more, new archs.
    config.budget = 8
    second = run_study(client, config, storage=storage)  # type: ignore[arg-type]
    assert second.trials_before == trials
    assert len(second.result.records) == 20 and len(set(map(str, client.calls))) == 20
    assert [r.arch for r in second.result.records[:12]] == [r.arch for r in first.result.records]
    assert f"({second.trials_before} before this run)" in second.describe()[0]
    # A study of that name with other directions is not continued.
    other = SearchConfig(algo="tpe", objective="proxy", budget=1, proxy="synflow")
    with pytest.raises(ValueError, match="directions"):
        run_study(client, other, storage=storage,  # type: ignore[arg-type]
                  study_name=first.study_name)
    # A storage that cannot be opened is the caller's input: a ValueError that names it.
    for bad in ("bogus://x", f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}"):
        with pytest.raises(ValueError, match="cannot be opened"):
            run_study(client, config, storage=bad)  # type: ignore[arg-type]


def test_hypervolume_is_exact_and_agrees_with_optuna() -> None:
    import numpy as np
    from optuna._hypervolume import compute_hypervolume

    box = ((0.0, 100.0), (80.0, 100.0))  # latency 0..100 ms, accuracy 80..100 %
    # One arch at 50 ms and 90 %: half the latency axis, half the accuracy axis.
    assert hypervolume([(50.0, 90.0)], *box) == pytest.approx(0.25)
    # A dominated point adds nothing; one outside the box is clipped to it.
    assert hypervolume([(50.0, 90.0), (60.0, 85.0), (150.0, 99.0)], *box) == \
        pytest.approx(0.25)
    assert hypervolume([], *box) == 0.0
    rng = np.random.default_rng(0)
    points = [(float(lat), float(acc)) for lat, acc in
              zip(rng.uniform(0, 100, 40), rng.uniform(80, 100, 40))]
    # Optuna's exact (WFG) hypervolume of the same points as losses in the unit box.
    losses = np.array([[lat / 100, (100 - acc) / 20] for lat, acc in points])
    assert hypervolume(points, *box) == pytest.approx(
        compute_hypervolume(losses, np.array([1.0, 1.0])))
