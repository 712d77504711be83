"""The client's commands of `edgescore` (click), with progress bars on long work; the `edgescore`
command itself, with `serve`, `agent` and `eval` beside these, is edgescore.cli."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

import click

from edgescore.client.cli_options import (
    IN_FLIGHT,
    POSITIVE,
    UINT32,
    UINT64,
    Context,
    measurement_options,
    pop_measurement,
    progress,
    split_list,
)
from edgescore.client.cli_search import demo, search
from edgescore.client.tables import format_table, results_table

DEFAULT_SERVER = "127.0.0.1:50051"


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
    ctx.obj = Context(server, token, tls_ca, tls_cert, tls_key, timeout)


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
@click.option("--arch", help="spec string: NB201 cell (default space), NATS-SSS channels or "
                              "the 22 FBNet layer ops")
@click.option("--space", default="nb201", show_default=True,
              help="nb201 | nats_sss | fbnet | nb101 | macro | vit")
@click.option("--spec", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="JSON file with the spec (nb101 / macro / vit)")
@click.option("--onnx", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="an ONNX model to score as is")
@click.option("--proxies", default="params,flops,synflow,naswot", show_default=True)
@click.option("--device", default="", help="device classes, comma-separated")
@click.option("--seed", type=UINT64)
@click.option("--num-classes", type=UINT32, default=0)
@click.option("--input-resolution", type=UINT32, default=0)
@measurement_options
@click.option("--json", "as_json", is_flag=True, help="print the full result as JSON")
@click.pass_obj
def score(obj: Context, arch: Optional[str], space: str, spec: Optional[Path],
          onnx: Optional[Path], proxies: str, device: str, seed: Optional[int],
          num_classes: int, input_resolution: int, as_json: bool, **kw: Any) -> None:
    """Score one architecture."""
    spec_value, space = _arch_input(arch, spec, onnx, space)
    with obj.client() as client:
        result = client.score(spec_value, split_list(proxies), split_list(device), space=space,
                              seed=seed, measurement=pop_measurement(kw), num_classes=num_classes,
                              input_resolution=input_resolution)
    if as_json:
        click.echo(json.dumps(asdict(result), default=str, indent=2))
        return
    click.echo(results_table([result], split_list(proxies), split_list(device)))
    for p in result.proxies.values():
        if not p.ok:
            click.echo(f"proxy {p.name}: {p.code.name}: {p.message}")


@cli.command()
@click.argument("specs", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="CSV to append results to (resumable: rows the server answered are kept, "
                   "failed ones and transient item failures retried)")
@click.option("--space", default="nb201", show_default=True, help="for rows without 'space'")
@click.option("--proxies", default="params,flops,synflow,naswot", show_default=True)
@click.option("--device", default="", help="device classes, comma-separated")
@click.option("--seed", type=UINT64)
@click.option("--max-in-flight", type=IN_FLIGHT, default=8, show_default=True)
@click.option("--allow-predicted", is_flag=True, help="predict latency when no agent is online")
@measurement_options
@click.option("--no-progress", is_flag=True)
@click.pass_obj
def batch(obj: Context, specs: Path, out: Path, space: str, proxies: str, device: str,
          seed: Optional[int], max_in_flight: int, allow_predicted: bool, no_progress: bool,
          **kw: Any) -> None:
    """Score every spec of a CSV (column 'arch', optional 'id', 'space') or JSONL file.

    Exits 1 when a row of this run has an error (after writing every row)."""
    from edgescore.client.batch import BatchError, columns, read_specs, resume, run_batch

    proxy_list, device_list = split_list(proxies), split_list(device)
    try:
        todo = read_specs(specs, space)
        done = resume(out, columns(proxy_list, device_list))
    except BatchError as exc:
        raise click.UsageError(str(exc)) from None
    skip = len(done & {s.id for s in todo})
    if skip:
        click.echo(f"resuming: {skip} of {len(todo)} already in {out}", err=True)
    failed = 0
    with obj.client() as client, progress(len(todo) - skip, "scoring", no_progress) as bar:
        def on_row(row: dict) -> None:
            nonlocal failed
            failed += bool(row["error"])
            bar.update(1)

        scored = run_batch(client, todo, out, proxy_list, device_list,
                           max_in_flight=max_in_flight, on_row=on_row, done=done, seed=seed,
                           measurement=pop_measurement(kw), allow_predicted=allow_predicted)
    click.echo(f"wrote {out} ({len(todo)} specs, {scored} scored in this run, "
               f"{failed} with errors)")
    if failed:
        click.get_current_context().exit(1)


@cli.command()
@click.pass_obj
def proxies(obj: Context) -> None:
    """List the proxies."""
    with obj.client() as client:
        rows = [["proxy", "unit", "transform", "data", "description"]]
        rows += [[p.name, p.unit, p.transform[:30], "yes" if p.needs_data else "no",
                  p.description.split(". ")[0][:70]] for p in client.proxies()]
    click.echo(format_table(rows))


@cli.command()
@click.pass_obj
def spaces(obj: Context) -> None:
    """List the search spaces."""
    with obj.client() as client:
        rows = [["space", "available", "description"]]
        rows += [[s.name, "yes" if s.available else "reserved", s.description[:70]]
                 for s in client.spaces()]
    click.echo(format_table(rows))


@cli.command()
@click.pass_obj
def devices(obj: Context) -> None:
    """List device classes: agents online and busy, queue depth, measurements stored."""
    with obj.client() as client:
        rows = [["device class", "online", "busy", "queue", "done", "runtimes"]]
        rows += [[d.device_class, str(d.agents_online), str(d.agents_busy), str(d.queue_depth),
                  str(d.measurements_done), ", ".join(d.runtimes)] for d in client.devices()]
    click.echo(format_table(rows))


cli.add_command(search)
cli.add_command(demo)
