"""`edgescore eval ...`: offline evaluations that run server code in this process (they need
the `[server]` extra; nothing is imported from it until a command runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import click

from edgescore.client.cli_options import split_list


class _Usage(click.ClickException):
    """Exit code 2 with "error: ..." (bad input to an evaluation)."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.message}", err=True)


def _server_code(command: str, exc: ImportError) -> click.ClickException:
    return _Usage(f"`edgescore eval {command}` runs server code locally and needs the server "
                  f"extra (torch): pip install 'edgescore[server]' ({exc})")


@click.group("eval")
def evaluate() -> None:
    """Offline evaluation (needs edgescore[server])."""


@evaluate.command("proxies")
@click.option("--space", default="nb201", show_default=True)
@click.option("--dataset", default="cifar10", show_default=True,
              help="cifar10 | cifar100 | imagenet16-120 (ground truth and class count)")
@click.option("--archs", type=int, default=100, show_default=True, help="archs to sample")
@click.option("--seed", type=int, default=42, show_default=True,
              help="seed of the arch sample and of every proxy (Samsung's)")
@click.option("--proxies", default="", help="comma-separated (default: all registered)")
@click.option("--workers", type=click.IntRange(min=0), default=0,
              help="processes (default: CPU cores)")
@click.option("--out", type=click.Path(path_type=Path),
              help="default out/eval-<space>-<dataset>-<N>-<seed>")
@click.option("--device", default="cpu", show_default=True, help="torch device for the proxies")
@click.option("--csv", type=click.Path(path_type=Path),
              help="accuracy_dev.csv (default: ../shared/data/nb201/ of the checkout)")
@click.option("--anchors", type=click.Path(path_type=Path),
              help="reference_correlations.csv (default: ../shared/anchors/ of the checkout)")
@click.option("--naslib", type=click.Path(path_type=Path),
              help="naslib_zc_scores.csv (default: next to the accuracy CSV)")
@click.option("--within-naslib", is_flag=True,
              help="sample only archs NASLib scored, so the agreement column has all n")
@click.option("--extra", "extras", multiple=True, metavar="PROXY:KEY=VALUE",
              help="an extra setting of one proxy in place of its default, repeatable "
                   "(e.g. swap:inits=4); the report lists every proxy's settings")
@click.option("--batch", "batches", multiple=True, metavar="PROXY=N",
              help="one proxy's batch size in place of its default, repeatable")
@click.option("--no-progress", is_flag=True)
def eval_proxies(space: str, dataset: str, archs: int, seed: int, proxies: str, workers: int,
                 out: Optional[Path], device: str, csv: Optional[Path], anchors: Optional[Path],
                 naslib: Optional[Path], within_naslib: bool, extras: tuple[str, ...],
                 batches: tuple[str, ...], no_progress: bool) -> None:
    """Rank correlation of proxies with trained accuracy on a seeded sample of
    accuracy_dev.csv (Spearman, Kendall), against published figures and NASLib's values.
    Resumable: rerun the same command after a stop."""
    try:
        from edgescore.evaluation.inputs import EvalError
        from edgescore.evaluation.nb201_eval import run_eval
        from edgescore.evaluation.records import EvalConfig
    except ImportError as exc:
        raise _server_code("proxies", exc) from None
    config = EvalConfig(
        space=space, dataset=dataset, archs=archs, seed=seed, proxies=split_list(proxies) or None,
        workers=workers, out=out, device=device, csv=csv, anchors=anchors, naslib=naslib,
        within_naslib=within_naslib, progress=not no_progress, extra=_extras(extras),
        batch=_batches(batches))
    try:
        run_eval(config)
    except EvalError as exc:
        raise _Usage(str(exc)) from None
    except KeyboardInterrupt:
        click.echo("\ninterrupted: finished archs are saved; run the same command again to "
                   "resume", err=True)
        raise click.exceptions.Exit(130) from None


_AGGREGATE_HELP = ("METHOD:a+b+c, repeatable: a label-free aggregation of proxies added as one "
                   "more (METHOD mean | log_rank | geo_mean)")


@evaluate.command("hw-study")
@click.option("--proxies-csv", type=click.Path(path_type=Path), multiple=True,
              help="per_arch.csv of `edgescore eval proxies`, repeatable (runs over the same "
                   "archs merge on the index; default: the committed 1,000-arch CIFAR-10 run)")
@click.option("--hw-csv", type=click.Path(path_type=Path),
              help="hw_nas_bench_c10_dev.csv (default: ../shared/data/nb201/ of the checkout)")
@click.option("--devices", default="", help="comma-separated (default: all six)")
@click.option("--quantiles", default="", help="budget quantiles in % (default 25,50,75)")
@click.option("--proxies", default="", help="comma-separated (default: every column)")
@click.option("--aggregate", "aggregates", multiple=True, help=_AGGREGATE_HELP + " (default "
              "mean:synflow+jacob_cov+naswot; 'none' for none)")
@click.option("--archs", type=int, default=0, help="first N rows only (default all)")
@click.option("--learned", default="", help="comma-separated N: add the few-label ranker fitted "
              "on N random archs' accuracies (every proxy column and the graph features)")
@click.option("--learned-seeds", type=click.IntRange(min=1), default=5, show_default=True,
              help="draws per N for --learned")
@click.option("--offline", is_flag=True,
              help="read latencies from the table instead of replay agents + server")
@click.option("--out", type=click.Path(path_type=Path), default=Path("out") / "hw-study",
              show_default=True)
def hw_study(proxies_csv: tuple[Path, ...], hw_csv: Optional[Path], devices: str,
             quantiles: str, proxies: str, aggregates: tuple[str, ...], archs: int,
             learned: str, learned_seeds: int, offline: bool, out: Path) -> None:
    """The survey's hardware-aware study on HW-NAS-Bench replay devices: for each device and
    latency budget (quantiles of its latencies) each proxy picks its best feasible arch; report
    the accuracy gap to the best feasible arch and Kendall tau inside the feasible set."""
    try:
        from edgescore.evaluation import hw_study as study
        from edgescore.evaluation import inputs
    except ImportError as exc:
        raise _server_code("hw-study", exc) from None
    default_csv = inputs.default_study_proxies_csv()
    csvs = list(proxies_csv) or ([default_csv] if default_csv else [])
    hw_csv = hw_csv or inputs.default_hw_csv()
    if not csvs or hw_csv is None:
        raise _Usage("give --proxies-csv (from `edgescore eval proxies`) and --hw-csv "
                     "(hw_nas_bench_c10_dev.csv)")
    chosen = (study.DEFAULT_AGGREGATES if not aggregates
              else [] if aggregates == ("none",) else [_aggregate(a) for a in aggregates])
    config = study.StudyConfig(
        proxies_csvs=csvs, hw_csv=hw_csv, out=out,
        devices=split_list(devices) or study.DEVICES,
        quantiles=_quantiles(quantiles) or study.QUANTILES,
        proxies=split_list(proxies) or None, aggregates=chosen, offline=offline, archs=archs,
        learned=_counts(learned, "--learned"), learned_seeds=learned_seeds)
    try:
        study.run_study(config)
    except study.StudyError as exc:
        raise _Usage(str(exc)) from None
    click.echo((out / "study.md").read_text())


@evaluate.command("aggregate")
@click.option("--proxies-csv", type=click.Path(path_type=Path), multiple=True, required=True,
              help="per_arch.csv of `edgescore eval proxies`, repeatable (merged on the index)")
@click.option("--candidates", default="", help="comma-separated proxies to choose members "
              "from (default: every column)")
@click.option("--max-members", type=click.IntRange(2, 6), default=4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True,
              help="seed of the selection / report split")
@click.option("--splits", type=click.IntRange(min=1), default=1, show_default=True,
              help="repeat the choice on this many splits (seeds --seed, --seed + 1, ...) and "
                   "summarise them")
@click.option("--fixed", multiple=True, help=_AGGREGATE_HELP + ", reported beside the chosen ones")
@click.option("--out", type=click.Path(path_type=Path), default=Path("out") / "aggregate",
              show_default=True)
def aggregate(proxies_csv: tuple[Path, ...], candidates: str, max_members: int, seed: int,
              splits: int, fixed: tuple[str, ...], out: Path) -> None:
    """Label-free aggregations (mean, log-rank, geometric mean of percentiles): the best members
    chosen on one random half of the archs, Kendall tau and Spearman rho on the other half."""
    try:
        from edgescore.evaluation import aggregate as agg
        from edgescore.evaluation.per_arch import TableError
    except ImportError as exc:
        raise _server_code("aggregate", exc) from None
    try:
        agg.run(list(proxies_csv), split_list(candidates) or None, max_members, seed,
                [_aggregate(f) for f in fixed], out, splits=splits)
    except TableError as exc:
        raise _Usage(str(exc)) from None
    click.echo((out / "aggregate.md").read_text())


def _extras(texts: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """--extra swap:inits=4 --extra swap:... -> {"swap": {"inits": "4", ...}}."""
    out: dict[str, dict[str, str]] = {}
    for text in texts:
        proxy, _, setting = text.partition(":")
        key, eq, value = setting.partition("=")
        if not (proxy and key and eq):
            raise click.BadParameter(f"expected PROXY:KEY=VALUE, got {text!r}",
                                     param_hint="'--extra'")
        out.setdefault(proxy, {})[key] = value
    return out


def _batches(texts: tuple[str, ...]) -> dict[str, int]:
    """--batch vkdnw=16 -> {"vkdnw": 16}."""
    out = {}
    for text in texts:
        proxy, _, size = text.partition("=")
        if not (proxy and size.isdigit() and int(size) > 0):
            raise click.BadParameter(f"expected PROXY=N, got {text!r}", param_hint="'--batch'")
        out[proxy] = int(size)
    return out


def _aggregate(text: str) -> tuple[str, tuple[str, ...]]:
    """--aggregate "log_rank:a+b+c" -> ("log_rank", ("a", "b", "c"))."""
    from edgescore.evaluation.aggregate import METHODS

    method, _, listed = text.partition(":")
    members = tuple(m.strip() for m in listed.split("+") if m.strip())
    if method not in METHODS or len(members) < 2 or len(set(members)) != len(members):
        raise click.BadParameter(
            f"expected METHOD:a+b[+...] with METHOD one of {', '.join(METHODS)} and 2 or more "
            f"distinct proxies, got {text!r}")
    return method, members

@evaluate.command("learned")
@click.option("--proxies-csv", "proxies_csvs", type=click.Path(path_type=Path), multiple=True,
              help="per_arch.csv of `edgescore eval proxies`, repeatable (merged on index; "
                   "default: the committed 1,000-arch CIFAR-10 run)")
@click.option("--proxies", default="", help="comma-separated proxy columns (default: all)")
@click.option("--labels", default="20,50,100,400", show_default=True,
              help="comma-separated N: labelled archs per draw")
@click.option("--seeds", type=click.IntRange(min=1), default=10, show_default=True,
              help="draws per N")
@click.option("--first-seed", type=int, default=0, show_default=True)
@click.option("--truth", default="", help="rank against this column of the accuracy table "
              "instead of the CSVs' accuracy (e.g. c10_test, VKDNW's and AZ-NAS's ground truth)")
@click.option("--accuracy-csv", type=click.Path(path_type=Path),
              help="the accuracy table for --truth (default: shared accuracy_dev.csv)")
@click.option("--out", type=click.Path(path_type=Path), default=Path("out") / "learned",
              show_default=True)
def eval_learned(proxies_csvs: tuple[Path, ...], proxies: str, labels: str, seeds: int,
                 first_seed: int, truth: str, accuracy_csv: Optional[Path], out: Path) -> None:
    """Few-label ranking: fit the learned ranker on N labelled archs (graph features, proxy
    values, both) and report Kendall tau and Spearman rho on the rest."""
    try:
        from edgescore.evaluation import inputs, learned
    except ImportError as exc:
        raise _server_code("learned", exc) from None
    paths = proxies_csvs or tuple(filter(None, [inputs.default_study_proxies_csv()]))
    if not paths:
        raise _Usage("give --proxies-csv (per_arch.csv from `edgescore eval proxies`)")
    config = learned.LearnedConfig(
        per_arch=tuple(paths), out=out, proxies=tuple(split_list(proxies)) or None,
        counts=_counts(labels, "--labels"), seeds=seeds, first_seed=first_seed,
        truth=truth or None, accuracy_csv=accuracy_csv)
    try:
        click.echo(learned.run_learned(config))
    except inputs.EvalError as exc:
        raise _Usage(str(exc)) from None



@evaluate.command("predictor")
@click.option("--space", type=click.Choice(["nb201", "fbnet"]), default="nb201",
              show_default=True)
@click.option("--table", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="a latency table (arch column, <device>_ms columns; default: the prior the "
                   "server ships for the space, HELP's dev-split tables)")
@click.option("--devices", default="", help="target devices, comma-separated (default: all)")
@click.option("--k", "ks", default="5,10,20,100", show_default=True,
              help="measurements of the target, comma-separated")
@click.option("--seeds", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--rank", type=click.IntRange(min=1), default=6, show_default=True,
              help="dimensions of the arch embedding")
@click.option("--hold-out", type=click.Choice(["device", "family"]), default="device",
              show_default=True, help="family: the target's other batch sizes leave the prior too")
@click.option("--scratch", is_flag=True,
              help="also the from-scratch predictor at k >= 20 (slow)")
@click.option("--out", type=click.Path(path_type=Path),
              help="default out/predictor-<space>-<hold-out>")
def eval_predictor(space: str, table: Optional[Path], devices: str, ks: str, seeds: int,
                   rank: int, hold_out: str, scratch: bool, out: Optional[Path]) -> None:
    """Cross-device latency transfer, leave one device out: Spearman, MAPE and interval
    coverage on each target's unseen archs after k of its measurements."""
    import shlex
    import sys

    try:
        from edgescore.evaluation import predictor
        from edgescore.server.scoring.transfer import read_device_table, shipped_prior
        from edgescore.server.spaces.registry import get_space
    except ImportError as exc:
        raise _server_code("predictor", exc) from None
    try:
        counts = tuple(int(k) for k in split_list(ks))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {ks!r}",
                                 param_hint="'--k'") from None
    try:
        data = (read_device_table(table, space, lambda a: get_space(space).parse(a).canonical)
                if table else shipped_prior(space))
    except Exception as exc:  # noqa: BLE001 - a bad table is the user's input
        raise _Usage(f"--table: {exc}") from None
    targets = split_list(devices)
    unknown = sorted(set(targets) - set(data.devices))
    if unknown:
        raise _Usage(f"--devices: {', '.join(unknown)} not in the table "
                     f"(it has {', '.join(data.devices)})")
    if any(k < 1 or k >= len(data.archs) // 2 for k in counts):
        raise _Usage(f"--k: each k must be within 1..{len(data.archs) // 2 - 1}")
    rows = predictor.run(data, devices=targets, ks=counts, seeds=seeds, rank=rank,
                         hold_out=hold_out, scratch=scratch, progress=click.echo)
    out = out or Path("out") / f"predictor-{space}-{hold_out}"
    command = "edgescore eval " + shlex.join(sys.argv[2:] if len(sys.argv) > 2 else [])
    predictor.write(rows, out, space, command)
    click.echo(predictor.report(rows, space, command))
    click.echo(f"wrote {out}/report.md and per_device.csv")


def _counts(text: str, option: str) -> tuple[int, ...]:
    """Comma-separated label counts."""
    try:
        return tuple(int(n) for n in split_list(text))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}",
                                 param_hint=f"'{option}'") from None


def _quantiles(text: str) -> list[float]:
    """--quantiles "25,50,75": percentages strictly between 0 and 100."""
    try:
        values = [float(q) for q in split_list(text)]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {text!r}",
                                 param_hint="'--quantiles'") from None
    if any(not 0 < q < 100 for q in values):
        raise click.BadParameter(f"each quantile must be within (0, 100), got {text!r}",
                                 param_hint="'--quantiles'")
    return values
