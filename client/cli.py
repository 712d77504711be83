"""The client's commands of `edgescore` (click), with progress bars on long work; the `edgescore`
command itself, with `serve`, `agent` and `eval` beside these, is edgescore.cli."""

from __future__ import annotations

import csv
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

import click

from edgescore.client.api import Client
from edgescore.client.results import ScoreResult
from edgescore.client.tables import format_table, results_table

DEFAULT_SERVER = "127.0.0.1:50051"
DEMO_PROXIES = ["params", "flops", "synflow", "naswot"]
# The ranges of the v1 fields these options fill (uint32 / uint64): a value outside is a usage
# error here rather than protobuf's ValueError later.
UINT32 = click.IntRange(0, 2**32 - 1)
UINT64 = click.IntRange(0, 2**64 - 1)
IN_FLIGHT = click.IntRange(min=1)
SECONDS = click.FloatRange(min=0)
POSITIVE = click.FloatRange(min=0, min_open=True)


def _split(value: str) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _progress(total: Optional[int], desc: str, disable: bool = False) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="arch", disable=disable, file=sys.stderr)


class _Ctx:
    def __init__(self, server: str, token: str, tls_ca: str, tls_cert: str, tls_key: str,
                 timeout: float) -> None:
        self.server, self.token, self.timeout = server, token or None, timeout
        self.tls = {"tls_ca": tls_ca, "tls_cert": tls_cert, "tls_key": tls_key}

    def client(self) -> Client:
        # Checked here, not when the group parses its options: `serve`, `agent` and `eval` never
        # read these files, so a stale EDGESCORE_TLS_CA must not stop them.
        for key, path in self.tls.items():
            if path and path != "default" and not os.path.isfile(path):
                raise click.BadParameter(f"no such file: {path}",
                                         param_hint=f"'--{key.replace('_', '-')}'")
        return Client(self.server, token=self.token, timeout=self.timeout, **self.tls)


def _measurement_options(f: Any) -> Any:
    for name, kind, text in (
            ("--max-seconds", SECONDS, "per-measurement time cap (s)"),
            ("--min-seconds", SECONDS, "time to keep timing at least (s)"),
            ("--min-runs", UINT32, "timed runs at least"),
            ("--warmup-runs", UINT32, "untimed runs first"),
            ("--threads", UINT32, "runtime intra-op threads on the board")):
        f = click.option(name, type=kind, help=text)(f)
    return f


def _measurement(kw: dict) -> dict:
    """Pop the measurement options out of a command's keyword arguments (those given)."""
    keys = ("warmup_runs", "min_runs", "min_seconds", "max_seconds", "threads")
    found = {k: kw.pop(k, None) for k in keys}
    return {k: v for k, v in found.items() if v is not None}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--server", envvar="EDGESCORE_SERVER", default=DEFAULT_SERVER, show_default=True,
              help="server address host:port (env EDGESCORE_SERVER)")
@click.option("--token", envvar="EDGESCORE_TOKEN", default="",
              help="API token (env EDGESCORE_TOKEN)")
@click.option("--tls-ca", envvar="EDGESCORE_TLS_CA", default="",
              help="CA of the server certificate; 'default' for the system roots")
@click.option("--tls-cert", envvar="EDGESCORE_TLS_CERT", default="",
              help="client certificate (mutual TLS)")
@click.option("--tls-key", envvar="EDGESCORE_TLS_KEY", default="", help="its key")
@click.option("--timeout", type=POSITIVE, default=600.0, show_default=True,
              help="deadline of each call in seconds, retries included")
@click.pass_context
def cli(ctx: click.Context, server: str, token: str, tls_ca: str, tls_cert: str, tls_key: str,
        timeout: float) -> None:
    """edgescore: training-free proxy scores and edge-board latency for NAS candidates."""
    ctx.obj = _Ctx(server, token, tls_ca, tls_cert, tls_key, timeout)


def _arch_input(arch: Optional[str], spec: Optional[Path], onnx: Optional[Path],
                space: str) -> tuple[Any, str]:
    given = [x for x in (arch, spec, onnx) if x is not None]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --arch, --spec FILE.json, --onnx FILE")
    if onnx is not None:
        return onnx.read_bytes(), "onnx"
    if spec is not None:
        try:
            return json.loads(spec.read_text(encoding="utf-8-sig")), space
        except ValueError as exc:  # not JSON, or not UTF-8 (UnicodeDecodeError)
            raise click.BadParameter(f"{spec}: not a JSON file: {exc}",
                                     param_hint="'--spec'") from None
    return arch, space


@cli.command()
@click.option("--arch", help="spec string: NB201 cell (default space) or NATS-SSS channels")
@click.option("--space", default="nb201", show_default=True,
              help="nb201 | nats_sss | nb101 | macro | vit")
@click.option("--spec", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON file with the spec (nb101 / macro / vit)")
@click.option("--onnx", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="an ONNX model to score as is")
@click.option("--proxies", default="params,flops,synflow,naswot", show_default=True)
@click.option("--device", default="", help="device classes, comma-separated")
@click.option("--seed", type=UINT64)
@click.option("--num-classes", type=UINT32, default=0)
@click.option("--input-resolution", type=UINT32, default=0)
@_measurement_options
@click.option("--json", "as_json", is_flag=True, help="print the full result as JSON")
@click.pass_obj
def score(obj: _Ctx, arch: Optional[str], space: str, spec: Optional[Path],
          onnx: Optional[Path], proxies: str, device: str, seed: Optional[int],
          num_classes: int, input_resolution: int, as_json: bool, **kw: Any) -> None:
    """Score one architecture."""
    spec_value, space = _arch_input(arch, spec, onnx, space)
    with obj.client() as client:
        result = client.score(spec_value, _split(proxies), _split(device), space=space,
                              seed=seed, measurement=_measurement(kw), num_classes=num_classes,
                              input_resolution=input_resolution)
    if as_json:
        click.echo(json.dumps(asdict(result), default=str, indent=2))
        return
    click.echo(results_table([result], _split(proxies), _split(device)))
    for p in result.proxies.values():
        if not p.ok:
            click.echo(f"proxy {p.name}: {p.code.name}: {p.message}")


@cli.command()
@click.argument("specs", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="CSV to append results to (resumable: rows the server answered are kept, "
                   "failed ones retried)")
@click.option("--space", default="nb201", show_default=True, help="for rows without 'space'")
@click.option("--proxies", default="params,flops,synflow,naswot", show_default=True)
@click.option("--device", default="", help="device classes, comma-separated")
@click.option("--seed", type=UINT64)
@click.option("--max-in-flight", type=IN_FLIGHT, default=8, show_default=True)
@click.option("--allow-predicted", is_flag=True, help="predict latency when no agent is online")
@_measurement_options
@click.option("--no-progress", is_flag=True)
@click.pass_obj
def batch(obj: _Ctx, specs: Path, out: Path, space: str, proxies: str, device: str,
          seed: Optional[int], max_in_flight: int, allow_predicted: bool, no_progress: bool,
          **kw: Any) -> None:
    """Score every spec of a CSV (column 'arch', optional 'id', 'space') or JSONL file.

    Exits 1 when a row of this run has an error (after writing every row)."""
    from edgescore.client.batch import BatchError, columns, read_specs, resume, run_batch

    proxy_list, device_list = _split(proxies), _split(device)
    try:
        todo = read_specs(specs, space)
        done = resume(out, columns(proxy_list, device_list))
    except BatchError as exc:
        raise click.UsageError(str(exc)) from None
    skip = len(done & {s.id for s in todo})
    if skip:
        click.echo(f"resuming: {skip} of {len(todo)} already in {out}", err=True)
    failed = 0
    with obj.client() as client, _progress(len(todo) - skip, "scoring", no_progress) as bar:
        def on_row(row: dict) -> None:
            nonlocal failed
            failed += bool(row["error"])
            bar.update(1)

        scored = run_batch(client, todo, out, proxy_list, device_list,
                           max_in_flight=max_in_flight, on_row=on_row, done=done, seed=seed,
                           measurement=_measurement(kw), allow_predicted=allow_predicted)
    click.echo(f"wrote {out} ({len(todo)} specs, {scored} scored in this run, "
               f"{failed} with errors)")
    if failed:
        click.get_current_context().exit(1)


@cli.command()
@click.pass_obj
def proxies(obj: _Ctx) -> None:
    """List the proxies."""
    with obj.client() as client:
        rows = [["proxy", "unit", "transform", "data", "description"]]
        rows += [[p.name, p.unit, p.transform[:30], "yes" if p.needs_data else "no",
                  p.description.split(". ")[0][:70]] for p in client.proxies()]
    click.echo(format_table(rows))


@cli.command()
@click.pass_obj
def spaces(obj: _Ctx) -> None:
    """List the search spaces."""
    with obj.client() as client:
        rows = [["space", "available", "description"]]
        rows += [[s.name, "yes" if s.available else "reserved", s.description[:70]]
                 for s in client.spaces()]
    click.echo(format_table(rows))


@cli.command()
@click.pass_obj
def devices(obj: _Ctx) -> None:
    """List device classes: agents online and busy, queue depth, measurements stored."""
    with obj.client() as client:
        rows = [["device class", "online", "busy", "queue", "done", "runtimes"]]
        rows += [[d.device_class, str(d.agents_online), str(d.agents_busy), str(d.queue_depth),
                  str(d.measurements_done), ", ".join(d.runtimes)] for d in client.devices()]
    click.echo(format_table(rows))


@cli.command()
@click.option("--space", default="nb201", show_default=True)
@click.option("--algo", type=click.Choice(["evolution", "random"]), default="evolution",
              show_default=True)
@click.option("--budget", type=int, default=100, show_default=True,
              help="candidates to evaluate")
@click.option("--proxy", default="synflow", show_default=True)
@click.option("--device", default="", help="device class to measure latency on")
@click.option("--latency-ms", type=SECONDS, default=0.0,
              help="latency budget on --device (constraint) or target (mnas)")
@click.option("--objective", type=click.Choice(["constraint", "mnas", "proxy"]), default=None,
              help="default: constraint with --latency-ms, else proxy")
@click.option("--population", type=int, default=20, show_default=True, help="evolution: P")
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
@_measurement_options
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("out") / "search", show_default=True)
@click.option("--no-progress", is_flag=True)
@click.pass_obj
def search(obj: _Ctx, out: Path, no_progress: bool, within: Optional[Path],
           accuracy_csv: Optional[Path], accuracy_column: str, hw_csv: Optional[Path],
           hw_column: str, **kw: Any) -> None:
    """Random search or regularized evolution through the server; writes search.csv and
    pareto.png under --out. Exits 1 when no candidate could be scored."""
    measurement = _measurement(kw)
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
            **kw: Any) -> tuple[str, bool]:
    """The search's report, and whether any candidate was scored."""
    from edgescore.client.search import SearchConfig, run_search
    from edgescore.client.search_report import closeness, plot_pareto, read_column, write_csv
    from edgescore.client.search_spaces import WithinList, sampler_for

    config = SearchConfig(measurement=measurement, **kw)
    try:
        config.check()
        sampler = sampler_for(config.space)
        if within is not None:
            sampler = WithinList(sampler, _archs_of(within))
        accuracy = read_column(accuracy_csv, accuracy_column) if accuracy_csv else None
        latency = (read_column(hw_csv, hw_column or f"c10_{config.device}_latency")
                   if hw_csv else None)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    with _progress(config.budget, f"{config.algo} search", no_progress) as bar:
        result = run_search(client, config, sampler, on_record=lambda r: bar.update(1))
    write_csv(result, out / "search.csv")
    lines = [f"evaluated {len(result.records)} candidates "
             f"({sum(1 for r in result.records if r.error)} failed): {out / 'search.csv'}"]
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
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    return "\n".join(lines), best is not None


def _archs_of(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or "arch" not in reader.fieldnames:
            raise ValueError(f"{path} has no 'arch' column")
        return [row["arch"] for row in reader if row["arch"]]


@cli.command()
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
