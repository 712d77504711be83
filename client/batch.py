"""`edgescore batch`: specs from CSV or JSONL in, one CSV row per candidate out, resumable.

Input rows: `arch` (the spec: an NB201 / NATS-SSS string, or a JSON object for the dict spaces),
optional `id` (default: the row number) and `space` (default: the command's). Output rows are
appended and flushed as results arrive, so a stopped batch resumes where it stopped: ids already
in the output are skipped on the next run.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from edgescore.client.api import Client
from edgescore.client.results import BatchItem


class BatchError(ValueError):
    """A malformed input file (the message names the line)."""


@dataclass(frozen=True)
class Spec:
    id: str
    space: str
    arch: Any


def read_specs(path: Path, default_space: str = "nb201") -> list[Spec]:
    """Specs from a .jsonl (one object per line) or a .csv file."""
    specs: list[Spec] = []
    with open(path, newline="") as fh:
        if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
            rows: Iterator[tuple[int, Any]] = ((n, _json_line(path, n, line))
                                               for n, line in enumerate(fh, 1) if line.strip())
        else:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or "arch" not in reader.fieldnames:
                raise BatchError(f"{path}: a CSV needs an 'arch' column")
            rows = ((n, row) for n, row in enumerate(reader, 2))
        for n, row in rows:
            if not isinstance(row, dict) or row.get("arch") in (None, ""):
                raise BatchError(f"{path}:{n}: no 'arch'")
            arch = row["arch"]
            if isinstance(arch, str) and arch.lstrip().startswith("{"):
                arch = _json_line(path, n, arch)
            specs.append(Spec(str(row.get("id") or len(specs)),
                              str(row.get("space") or default_space), arch))
    ids = [s.id for s in specs]
    if len(set(ids)) != len(ids):
        raise BatchError(f"{path}: ids must be unique")
    return specs


def _json_line(path: Path, n: int, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise BatchError(f"{path}:{n}: not JSON: {exc}") from None


def done_ids(out: Path) -> set[str]:
    if not out.exists():
        return set()
    with open(out, newline="") as fh:
        return {row["id"] for row in csv.DictReader(fh) if row.get("id")}


def columns(proxies: Sequence[str], devices: Sequence[str]) -> list[str]:
    cols = ["id", "space", "arch", "canonical", "arch_hash"]
    cols += list(proxies)
    for d in devices:
        cols += [f"{d}_ms", f"{d}_source"]
    return cols + ["objective", "feasible", "error"]


def row_of(spec: Spec, item: BatchItem, cols: Sequence[str]) -> dict[str, Any]:
    arch = spec.arch if isinstance(spec.arch, str) else json.dumps(spec.arch, sort_keys=True)
    row: dict[str, Any] = {"id": spec.id, "space": spec.space, "arch": arch}
    if item.error is not None:
        row["error"] = f"{item.error.code.name}: {item.error.details}"
    else:
        assert item.result is not None
        values = item.result.to_row()
        row["canonical"] = values.pop("arch")
        errors = [f"{k[:-6]}: {v}" for k, v in values.items() if k.endswith("_error")]
        row.update({k: v for k, v in values.items() if k in cols})
        row["error"] = "; ".join(errors)
    return {c: ("" if isinstance(row.get(c), float) and math.isnan(row[c]) else row.get(c, ""))
            for c in cols}


def run_batch(client: Client, specs: Sequence[Spec], out: Path, proxies: Sequence[str],
              devices: Sequence[str], *, max_in_flight: int = 8,
              on_row: Callable[[dict], None] = lambda row: None,
              done: Optional[set[str]] = None, **options: Any) -> int:
    """Score the specs not yet in `out` (`done`: their ids, if the caller has read them),
    appending a row each; returns how many were scored. Specs of several spaces go in one pass
    (one score_many per space)."""
    skip = done_ids(out) if done is None else done
    todo = [s for s in specs if s.id not in skip]
    cols = columns(proxies, devices)
    new_file = not out.exists() or out.stat().st_size == 0
    out.parent.mkdir(parents=True, exist_ok=True)
    scored = 0
    with open(out, "a", newline="") as fh:
        writer = csv.DictWriter(fh, cols)
        if new_file:
            writer.writeheader()
        for space in sorted({s.space for s in todo}):
            group = [s for s in todo if s.space == space]
            for item in client.score_many([s.arch for s in group], proxies, devices,
                                          max_in_flight=max_in_flight, space=space, **options):
                row = row_of(group[item.index], item, cols)
                writer.writerow(row)
                fh.flush()
                scored += 1
                on_row(row)
    return scored
