"""An edgescore search as an Optuna study: `edgescore search --algo nsga2|tpe|random`.

The sampler is Optuna's own (NSGAIISampler, TPESampler, RandomSampler, seeded with the search's
seed); the objective is `Objective`. The budget counts evaluations, i.e. distinct archs sent to
the server, as the reference searches' budget does: trials rejected before scoring (outside
`within`, or an NB-101 draw that is no cell) and repeats of a known arch do not spend it. The
records of the evaluated trials, in trial order, make the same SearchResult as run_search's, so
search.csv, pareto.png and the report are the same for every algorithm.

With a storage (`sqlite:///study.db`) the study is created or loaded by name, and a second run
adds `budget` evaluations to it: its earlier trials count as known archs and stay in the records.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

from edgescore.client.api import Client
from edgescore.client.search import OPTUNA_ALGORITHMS, Record, SearchConfig, SearchResult
from edgescore.integrations.optuna.objective import (
    Objective,
    optimize,
    record_from_attrs,
    spec_key,
)

if TYPE_CHECKING:
    import optuna

# Trials one run may make at most, per evaluation of its budget: rejections and repeats cost no
# evaluation, so a sampler stuck on them would otherwise never end.
MAX_TRIALS_PER_EVALUATION = 50


def import_optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise ImportError("the Optuna searches need optuna: pip install 'edgescore[optuna]' "
                          f"({exc})") from None
    return optuna


def make_sampler(algo: str, seed: int, population: int = 20) -> optuna.samplers.BaseSampler:
    """Optuna's sampler for `algo`, with its defaults but the seed (and NSGA-II's population,
    which `--population` sets as it sets evolution's)."""
    optuna = import_optuna()
    if algo == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    if algo == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if algo == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise ValueError(f"unknown Optuna algorithm '{algo}'; known: {', '.join(OPTUNA_ALGORITHMS)}")


def default_study_name(config: SearchConfig) -> str:
    """The same search configuration finds its study again in a storage."""
    return "-".join(["edgescore", config.space, config.algo, config.proxy,
                     config.device or "no-device", config.resolved_objective(),
                     f"seed{config.seed}"])


@dataclass
class StudyOutcome:
    result: SearchResult
    study: optuna.Study
    study_name: str
    trials_before: int        # trials the study had when this run began
    rejected: Counter         # this run's trials rejected before scoring, by reason
    repeats: int              # this run's trials that met an arch known before
    evaluated_now: int

    def describe(self) -> list[str]:
        storage = "in memory" if self.study_name == "" else f"'{self.study_name}'"
        lines = [f"optuna {self.result.config.algo} study {storage}: "
                 f"{len(self.study.trials)} trials in all ({self.trials_before} before this run);"
                 f" this run evaluated {self.evaluated_now}, repeated {self.repeats} known "
                 f"arch(s), rejected {sum(self.rejected.values())} before scoring"]
        lines += [f"  rejected: {n} x {reason}" for reason, n in self.rejected.most_common()]
        if self.evaluated_now < self.result.config.budget:
            lines.append(f"  the budget was not spent: {len(self.study.trials)} trials reached "
                         f"the cap of {MAX_TRIALS_PER_EVALUATION} per evaluation")
        if len(self.study.directions) == 2:
            front = {spec_key(t.user_attrs["arch"]) for t in self.study.best_trials}
            lines.append(f"Pareto front (study.best_trials, {self.result.config.proxy} up, "
                         f"latency down): {len(front)} archs")
        return lines


def evaluated_records(study: optuna.Study, config: SearchConfig) -> list[Record]:
    """The records of the study's evaluated trials, in trial order."""
    trials = sorted((t for t in study.get_trials(deepcopy=False)
                     if t.user_attrs.get("evaluated")), key=lambda t: t.number)
    return [record_from_attrs(step, t.user_attrs, config) for step, t in enumerate(trials)]


def run_study(client: Client, config: SearchConfig, *, within: Optional[Collection[str]] = None,
              storage: Optional[str] = None, study_name: Optional[str] = None,
              on_record: Callable[[Record], None] = lambda record: None,
              quiet: bool = True) -> StudyOutcome:
    """Run (or, with a storage, continue) the study until `config.budget` more evaluations.
    `quiet`: Optuna logs only errors meanwhile (else a line per trial, and a warning per
    rejected one)."""
    optuna = import_optuna()
    config.check(OPTUNA_ALGORITHMS)
    verbosity = optuna.logging.get_verbosity()
    if quiet:
        optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        objective = Objective(client, config, within=within, limit=config.budget)
        name = study_name or (default_study_name(config) if storage else None)
        study, before = _study(optuna, config, objective, storage, name)

        def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if trial.user_attrs.get("evaluated"):
                on_record(record_from_attrs(trial.number, trial.user_attrs, config))

        optimize(study, objective, n_trials=MAX_TRIALS_PER_EVALUATION * config.budget,
                 n_jobs=config.max_in_flight, callbacks=[after_trial])
    finally:
        optuna.logging.set_verbosity(verbosity)
    now = study.get_trials(deepcopy=False)[before:]
    return StudyOutcome(
        SearchResult(config, evaluated_records(study, config)), study, name or "", before,
        Counter(t.user_attrs["rejected"].split(":")[0] for t in now
                if "rejected" in t.user_attrs),
        sum(1 for t in now if "duplicate_of" in t.user_attrs), objective.evaluations)


def _study(optuna: Any, config: SearchConfig, objective: Objective, storage: Optional[str],
           name: Optional[str]) -> tuple[optuna.Study, int]:
    """The study (new, or loaded from the storage) and the trials it had."""
    try:
        study = optuna.create_study(storage=storage, study_name=name, load_if_exists=True,
                                    directions=objective.directions,
                                    sampler=make_sampler(config.algo, config.seed,
                                                         config.population))
    except Exception as exc:  # SQLAlchemy's errors: an unknown scheme, a file it cannot open
        if storage is None:
            raise
        raise ValueError(f"storage {storage!r} cannot be opened: {exc}") from exc
    if [d.name.lower() for d in study.directions] != objective.directions:
        raise ValueError(f"study '{name}' has directions {study.directions}, this search "
                         f"needs {objective.directions}: give another --study-name")
    before = len(study.trials)
    if before:
        objective.remember(study.get_trials(deepcopy=False))
        # A fresh seed: the seeded sampler would otherwise propose the first run's archs again.
        study.sampler = make_sampler(config.algo, config.seed + before, config.population)
    return study, before
