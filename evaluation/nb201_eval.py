"""`edgescore eval proxies`: proxies of a seeded sample of NB201 archs against trained accuracy.

Each arch runs in-process through `engine.compute_proxies` (the code the server serves), in a pool
of worker processes with one torch thread each: NB201 networks are small, so one arch per core
beats several cores on one arch. Rows are appended to the per-arch CSV as they finish, tagged with
a hash of the settings, so an interrupted run resumes where it stopped and a run with other
settings never reuses them.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Optional

from edgescore.evaluation import report
from edgescore.evaluation.inputs import (
    DatasetSpec,
    EvalError,
    dataset_spec,
    default_accuracy_csv,
    default_anchors_csv,
    read_accuracy,
    sample_archs,
)
from edgescore.evaluation.per_arch import PER_ARCH_CSV, ArchRow, columns, load_done, write_rows
from edgescore.evaluation.records import SPACE, EvalConfig, EvalRun
from edgescore.server.errors import ServerError
from edgescore.server.proxies import engine, registry
from edgescore.server.proxies.base import SettingsOverride
from edgescore.server.proxies.settings import resolve_settings
from edgescore.server.spaces import registry as spaces

# -- the proxies' settings ---------------------------------------------------------------------


def override(name: str, seed: int, extra: dict[str, dict[str, str]],
             batch: dict[str, int]) -> SettingsOverride:
    """What the eval asks of one proxy: its defaults under the eval's seed, and any extra
    settings or batch size given for it."""
    return SettingsOverride(seed=seed, batch_size=batch.get(name),
                            extra=dict(extra[name]) if name in extra else None)


def resolve_proxies(names: Optional[Sequence[str]], seed: int,
                    extra: Optional[dict[str, dict[str, str]]] = None,
                    batch: Optional[dict[str, int]] = None) -> dict[str, dict]:
    """Each proxy's resolved settings under the eval's seed; raises EvalError for bad names."""
    chosen = list(names) if names else [p.name for p in registry.all_proxies()]
    if len(set(chosen)) != len(chosen):
        raise EvalError(f"a proxy is listed twice: {', '.join(chosen)}")
    extra, batch = extra or {}, batch or {}
    stray = sorted((set(extra) | set(batch)) - set(chosen))
    if stray:
        raise EvalError(f"settings for proxies not evaluated: {', '.join(stray)}")
    resolved = {}
    for name in chosen:
        try:
            proxy = registry.get_proxy(name)
            settings = resolve_settings(proxy, override(name, seed, extra, batch))
        except ServerError as exc:
            raise EvalError(exc.message) from None
        resolved[name] = dataclasses.asdict(settings)
    return resolved


def settings_key(config: EvalConfig, spec: DatasetSpec, proxy_settings: dict[str, dict]) -> str:
    """A short hash of everything that determines a row's values (not the sample size)."""
    blob = json.dumps({"space": config.space, "dataset": spec.name,
                       "num_classes": spec.num_classes, "resolution": spec.input_resolution,
                       "accuracy": spec.accuracy_column, "device": config.device,
                       "proxies": proxy_settings}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# -- the per-arch work (runs in worker processes) ----------------------------------------------


def _quiet_logs() -> None:
    # A failing proxy logs a traceback per arch; its reason is already in the CSV's error column.
    logging.getLogger("edgescore.server.proxies").setLevel(logging.ERROR)


def _init_worker() -> None:
    import torch

    # One thread per process: the pool already fills the cores, and oversubscribed BLAS/OpenMP
    # threads would only contend.
    torch.set_num_threads(1)
    _quiet_logs()


@dataclass(frozen=True)
class _Task:
    index: int
    arch: str
    accuracy: float
    space: str
    num_classes: int
    resolution: int
    proxies: tuple[str, ...]
    seed: int
    device: str
    settings: str
    extra: dict[str, dict[str, str]]
    batch: dict[str, int]


def compute_row(task: _Task) -> ArchRow:
    """All proxies of one arch; any failure lands in the row's errors, never raises."""
    start = time.perf_counter()
    values: dict[str, Optional[float]] = dict.fromkeys(task.proxies)
    errors: dict[str, str] = {}
    flags: list[str] = []
    try:
        space, arch = spaces.parse_arch(task.space, task.arch, task.num_classes, task.resolution)
        calls = [(name, override(name, task.seed, task.extra, task.batch))
                 for name in task.proxies]
        for outcome in engine.compute_proxies(space, arch, calls, device=task.device):
            flags.extend(outcome.flags)
            if outcome.error is None:
                values[outcome.name] = outcome.value
            else:
                errors[outcome.name] = f"{outcome.error.code.name}: {outcome.error.message}"
    except Exception as exc:  # noqa: BLE001 - one bad arch must not end a long evaluation
        message = exc.message if isinstance(exc, ServerError) else f"{type(exc).__name__}: {exc}"
        errors = {name: message for name in task.proxies}
    return ArchRow(task.index, task.arch, task.accuracy, values, errors,
                   tuple(dict.fromkeys(flags)), time.perf_counter() - start, task.settings)


def _run_tasks(tasks: Sequence[_Task], workers: int,
               on_row: Callable[[ArchRow], None]) -> None:
    if workers <= 1:
        _quiet_logs()
        for task in tasks:
            on_row(compute_row(task))
        return
    # spawn, not fork: the parent has already started torch's thread pools, which a forked child
    # inherits in a broken state.
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                             initializer=_init_worker) as pool:
        pending: set[Future] = {pool.submit(compute_row, t) for t in tasks}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    on_row(fut.result())
        except BaseException:
            # Ctrl-C or a broken worker: drop the queue; finished rows are already saved.
            for fut in pending:
                fut.cancel()
            pool.shutdown(wait=False, cancel_futures=True)
            raise


# -- the run -----------------------------------------------------------------------------------


def default_out_dir(config: EvalConfig, spec: DatasetSpec) -> Path:
    return Path("out") / f"eval-{config.space}-{spec.name}-{config.archs}-{config.seed}"


def run_eval(config: EvalConfig, log: Callable[[str], None] = print) -> EvalRun:
    """Compute (or reuse) the sample's proxy rows and write the report; returns the run."""
    from tqdm import tqdm

    start = time.perf_counter()
    if config.space != SPACE:
        raise EvalError(f"only --space {SPACE} is evaluated (accuracy tables exist for it)")
    spec = dataset_spec(config.dataset)
    csv_path = config.csv or default_accuracy_csv()
    if csv_path is None:
        raise EvalError("edgescore is not running from its checkout: pass --csv "
                        "path/to/accuracy_dev.csv")
    proxy_settings = resolve_proxies(config.proxies, config.seed, config.extra, config.batch)
    proxies = list(proxy_settings)
    key = settings_key(config, spec, proxy_settings)

    population = read_accuracy(Path(csv_path), spec.accuracy_column)
    naslib_path = config.naslib or Path(csv_path).with_name("naslib_zc_scores.csv")
    naslib = report.read_naslib(naslib_path, spec.naslib_name)
    if config.within_naslib:
        if not naslib:
            raise EvalError(f"--within-naslib: no NASLib scores for {spec.name} in {naslib_path}")
        population = [r for r in population if r[0] in naslib]
    sample = sample_archs(population, config.archs, config.seed)

    out_dir = Path(config.out) if config.out else default_out_dir(config, spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    per_arch = out_dir / PER_ARCH_CSV
    done, dropped = load_done(per_arch, proxies, key)
    if dropped:
        log(f"{per_arch}: ignoring {dropped} row(s) computed with other settings (or cut short)")
    # Rewritten with only the good rows, so appends never follow a half-written line.
    write_rows(per_arch, proxies, done.values())

    tasks = [_Task(i, arch, acc, config.space, spec.num_classes, spec.input_resolution,
                   tuple(proxies), config.seed, config.device, key, config.extra,
                   config.batch)
             for i, arch, acc in sample if i not in done]
    reused = len(sample) - len(tasks)
    workers = config.workers or os.cpu_count() or 1
    workers = max(1, min(workers, len(tasks)))
    log(f"{config.space}/{spec.name}: {len(sample)} archs, seed {config.seed}, "
        f"{len(proxies)} proxies ({', '.join(proxies)}); {reused} already done, "
        f"computing {len(tasks)} on {workers} worker(s) [{config.device}]")

    with per_arch.open("a", newline="") as fh, \
            tqdm(total=len(tasks), unit="arch", disable=not config.progress,
                 desc=f"eval {spec.name}") as bar:
        writer = csv.DictWriter(fh, fieldnames=columns(proxies))

        def on_row(row: ArchRow) -> None:
            writer.writerow(row.to_csv(proxies))
            fh.flush()  # a row on disk is a row a restart does not recompute
            done[row.index] = row
            bar.update(1)

        _run_tasks(tasks, workers, on_row)

    run = EvalRun(config, spec, proxies, out_dir, [done[i] for i, _, _ in sample], len(tasks),
                  reused, key, proxy_settings, time.perf_counter() - start)
    run.files["csv"] = per_arch
    run.summaries = report.write_report(run, naslib, _anchor_path(config), log)
    return run


def _anchor_path(config: EvalConfig) -> Optional[Path]:
    path = config.anchors or default_anchors_csv()
    return Path(path) if path is not None else None

