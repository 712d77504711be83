"""Optuna over edgescore's spaces (`pip install "edgescore[optuna]"`).

    import optuna
    from edgescore.client import Client
    from edgescore.client.search import SearchConfig
    from edgescore.integrations.optuna import Objective, optimize

    config = SearchConfig(space="nb201", algo="nsga2", proxy="synflow", device="raspi4")
    with Client("localhost:50051") as client:
        objective = Objective(client, config)            # (synflow up, latency down)
        study = optuna.create_study(directions=objective.directions,
                                    sampler=optuna.samplers.NSGAIISampler(seed=0))
        optimize(study, objective, n_trials=200)          # failed candidates: FAIL trials
    for t in study.best_trials:                           # the Pareto front
        print(t.values, t.user_attrs["canonical_arch"], t.user_attrs["latency"])

`spec_from_trial(trial, space)` maps a trial to a valid spec of any space with a sampler
(spaces.py); `Objective` scores it through the SDK (objective.py); `run_study` is the search
behind `edgescore search --algo nsga2|tpe|random` (study.py). optuna itself is imported only
where a sampler or a study is made, so these modules import without it.
"""

from edgescore.integrations.optuna.objective import (
    CONSTRAINT,
    CandidateFailed,
    Objective,
    optimize,
    record_from_attrs,
    spec_key,
)
from edgescore.integrations.optuna.spaces import SPEC_OF_TRIAL, spec_from_trial
from edgescore.integrations.optuna.study import (
    StudyOutcome,
    default_study_name,
    make_sampler,
    run_study,
)

__all__ = ["CONSTRAINT", "SPEC_OF_TRIAL", "CandidateFailed", "Objective", "StudyOutcome",
           "default_study_name", "make_sampler", "optimize", "record_from_attrs", "run_study",
           "spec_from_trial", "spec_key"]
