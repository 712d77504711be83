"""`edgescore search` and `edgescore demo`: searches through the server, and their report."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Callable, Optional

import click

from edgescore.client.api import Client
from edgescore.client.cli_options import (
    IN_FLIGHT,
    SECONDS,
    Context,
    measurement_options,
    pop_measurement,
    progress,
)
from edgescore.client.results import ScoreResult
from edgescore.client.tables import results_table

DEMO_PROXIES = ["params", "flops", "synflow", "naswot"]


@click.command()
@click.option("--space", default="nb201", show_default=True)
@click.option("--algo", type=click.Choice(["evolution", "nsga2", "tpe", "random"]),
              default="evolution", show_default=True,
              help="nsga2, tpe, random: Optuna's samplers (edgescore[optuna]); evolution: "
                   "regularized evolution")
@click.option("--budget", type=int, default=100, show_default=True,
              help="candidates to evaluate")
@click.option("--proxy", default="synflow", show_default=True)
@click.option("--device", default="", help="device class to measure latency on")
@click.option("--latency-ms", type=SECONDS, default=0.0,
              help="latency budget on --device (constraint) or target (mnas)")
@click.option("--objective", type=click.Choice(["constraint", "mnas", "proxy", "pareto"]),
              default=None, help="default: constraint with --latency-ms, else pareto (proxy up, "
                                 "latency down) for nsga2 / tpe with --device, else proxy")
@click.option("--population", type=int, default=20, show_default=True,
              help="evolution: P; nsga2: the population size")
@click.option("--sample-size", type=int, default=5, show_default=True, help="evolution: S")
@click.option("--seed", type=int, default=0, show_default=True, help="the search's seed")
@click.option("--max-in-flight", type=IN_FLIGHT, default=4, show_default=True)
@click.option("--within", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV with an 'arch' column: search only these archs (e.g. a benchmark split)")
@click.option("--accuracy-csv", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="trained accuracies (e.g. accuracy_dev.csv): report the found arch's gap")
@click.option("--accuracy-column", default="c10_test", show_default=True)
@click.option("--hw-csv", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="latency table (e.g. hw_nas_bench_c10_dev.csv) defining the feasible set")
@click.option("--hw-column", default="", help="default c10_<device>_latency")
@click.option("--allow-predicted", is_flag=True)
@click.option("--storage", default=None,
              help="Optuna storage, e.g. sqlite:///study.db: a rerun continues the study")
@click.option("--study-name", default=None, help="default: made from the search's settings")
@measurement_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("out") / "search", show_default=True)
@click.option("--no-progress", is_flag=True)
@click.pass_obj
def search(obj: Context, out: Path, no_progress: bool, within: Optional[Path],
           accuracy_csv: Optional[Path], accuracy_column: str, hw_csv: Optional[Path],
           hw_column: str, **kw: Any) -> None:
    """A search through the server (Optuna's NSGA-II, TPE or random sampler, or regularized
    evolution); writes search.csv and pareto.png under --out. Exits 1 when no candidate could
    be scored."""
    measurement = pop_measurement(kw)
    with obj.client() as client:
        report, found = _search(client, out, measurement=measurement, within=within,
                                accuracy_csv=accuracy_csv, accuracy_column=accuracy_column,
                                hw_csv=hw_csv, hw_column=hw_column, no_progress=no_progress,
                                **kw)
    click.echo(report)
    if not found:
        click.get_current_context().exit(1)


def _search(client: Client, out: Path, *, measurement: dict, within: Optional[Path] = None,
            accuracy_csv: Optional[Path] = None, accuracy_column: str = "c10_test",
            hw_csv: Optional[Path] = None, hw_column: str = "", no_progress: bool = False,
            storage: Optional[str] = None, study_name: Optional[str] = None,
            **kw: Any) -> tuple[str, bool]:
    """The search's report, and whether any candidate was scored."""
    from edgescore.client.search import OPTUNA_ALGORITHMS, SearchConfig, run_search
    from edgescore.client.search_report import (
        closeness,
        hypervolumes,
        plot_pareto,
        read_column,
        write_csv,
    )
    from edgescore.client.search_spaces import WithinList, sampler_for

    config = SearchConfig(measurement=measurement, **kw)
    optuna_search = config.algo != "evolution"
    try:
        if optuna_search:
            config.check(OPTUNA_ALGORITHMS)
        else:
            config.check()
            if storage or study_name:
                raise ValueError("--storage and --study-name are for nsga2, tpe and random")
        sampler = sampler_for(config.space)
        allowed = _archs_of(within) if within is not None else None
        if allowed is not None:
            sampler = WithinList(sampler, allowed)
        accuracy = read_column(accuracy_csv, accuracy_column) if accuracy_csv else None
        latency = (read_column(hw_csv, hw_column or f"c10_{config.device}_latency")
                   if hw_csv else None)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    notes: list[str] = []
    with progress(config.budget, f"{config.algo} search", no_progress) as bar:
        if optuna_search:
            result, notes = _optuna_search(client, config, allowed, storage, study_name,
                                           lambda r: bar.update(1))
        else:
            result = run_search(client, config, sampler, on_record=lambda r: bar.update(1))
    write_csv(result, out / "search.csv")
    lines = [f"evaluated {len(result.records)} candidates "
             f"({sum(1 for r in result.records if r.error)} failed): {out / 'search.csv'}",
             *notes]
    lines.append(f"Pareto plot: {out / 'pareto.png'}" if plot_pareto(result, out / "pareto.png")
                 else "no plot (needs matplotlib: pip install 'edgescore[plots]', and latencies)")
    best = result.best
    if best is None:
        lines.append("no candidate was scored successfully")
    else:
        lines.append(f"found: {best.spec_text()}  {config.proxy}={best.proxy:.6g}"
                     + (f"  latency={best.latency_ms:.3f} ms ({best.latency_source.lower()})"
                        if config.device else "")
                     + ("" if best.feasible else "  (no feasible candidate found)"))
        if accuracy is not None:
            near = closeness(result, accuracy, latency)
            lines.append(near.describe() if near else "no feasible arch in the accuracy table")
        volumes = (hypervolumes(result, accuracy, latency)
                   if accuracy is not None and latency is not None else None)
        if volumes is not None:
            lines.append(volumes.describe())
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    return "\n".join(lines), best is not None


def _optuna_search(client: Client, config: Any, allowed: Optional[list[str]],
                   storage: Optional[str], study_name: Optional[str],
                   on_record: Callable[[Any], None]) -> tuple[Any, list[str]]:
    """Optuna's sampler for `config.algo` (edgescore.integrations.optuna, an extra): the
    search's result and the study's lines of the report."""
    try:
        from edgescore.integrations.optuna.study import import_optuna, run_study

        import_optuna()
    except ImportError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        outcome = run_study(client, config, within=None if allowed is None else set(allowed),
                            storage=storage, study_name=study_name, on_record=on_record)
    except ValueError as exc:  # e.g. a study of that name with other directions
        raise click.UsageError(str(exc)) from None
    return outcome.result, outcome.describe()


def _archs_of(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "arch" not in reader.fieldnames:
            raise ValueError(f"{path} has no 'arch' column")
        return [row["arch"] for row in reader if row["arch"]]


@click.command()
@click.option("--search-budget", type=int, default=30, show_default=True,
              help="candidates of the demo's search (0: skip the search)")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("out") / "demo", show_default=True)
def demo(search_budget: int, out: Path) -> None:
    """Local server + agent: score a few NB201 archs, then search under a latency budget."""
    from edgescore.client.launcher import LocalStack
    from edgescore.client.tables import DEMO_ARCHS

    click.echo("starting a local edgescore-server and one edgescore-agent "
               "(device class local-cpu)...")
    measurement = {"warmup_runs": 5, "min_runs": 30, "min_seconds": 0.3}
    with LocalStack(agents={"local-cpu": 1}) as stack, Client(stack.target) as client:
        click.echo(f"server on {stack.target}, metrics on "
                   f"http://127.0.0.1:{stack.metrics_port}/metrics")
        results: list[ScoreResult] = []
        for i, arch in enumerate(DEMO_ARCHS, 1):
            click.echo(f"[{i}/{len(DEMO_ARCHS)}] scoring {arch}")
            results.append(client.score(arch, DEMO_PROXIES, ["local-cpu"], seed=0,
                                        measurement=measurement))
        click.echo()
        click.echo(results_table(results, DEMO_PROXIES, ["local-cpu"]))
        click.echo("\nproxies: higher is better (params, flops = MACs, synflow = log, "
                   "naswot = log|K|); latency measured by the agent with onnxruntime.")
        if search_budget > 0:
            # The budget: the median latency of the five archs above, so about half the space
            # is feasible and the search has a real trade-off to make.
            medians = sorted(r.latencies["local-cpu"].median_ms for r in results
                             if r.latencies["local-cpu"].ok)
            budget = round(medians[len(medians) // 2], 3) if medians else 0.0
            click.echo(f"\nregularized evolution: {search_budget} candidates, synflow under "
                       f"{budget} ms on local-cpu...")
            report, _ = _search(client, out, measurement={**measurement, "min_runs": 20,
                                                          "min_seconds": 0.2},
                                space="nb201", algo="evolution", budget=search_budget,
                                proxy="synflow", device="local-cpu", latency_ms=budget,
                                population=10, sample_size=3, max_in_flight=2)
            click.echo(report)
