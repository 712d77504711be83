"""The per-arch CSV of an evaluation: one row per arch, tagged with a hash of the settings that
produced it, so an interrupted run resumes where it stopped and a run with other settings never
reuses its rows."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

PER_ARCH_CSV = "per_arch.csv"
FIXED_COLUMNS = ("index", "arch", "accuracy")
TAIL_COLUMNS = ("error", "flags", "seconds", "settings")


@dataclass
class ArchRow:
    index: int
    arch: str
    accuracy: float
    values: dict[str, Optional[float]]
    errors: dict[str, str] = field(default_factory=dict)
    flags: tuple[str, ...] = ()
    seconds: float = 0.0
    settings: str = ""

    def to_csv(self, proxies: Sequence[str]) -> dict[str, str]:
        row = {"index": str(self.index), "arch": self.arch, "accuracy": repr(self.accuracy)}
        for name in proxies:
            value = self.values.get(name)
            row[name] = "" if value is None else repr(value)
        row["error"] = " | ".join(f"{k}: {v}" for k, v in self.errors.items())
        row["flags"] = ";".join(self.flags)
        row["seconds"] = f"{self.seconds:.4f}"
        row["settings"] = self.settings
        return row

    @classmethod
    def from_csv(cls, row: dict[str, Optional[str]], proxies: Sequence[str]) -> ArchRow:
        values = {name: (float(row[name]) if row[name] else None) for name in proxies}
        errors = {}
        for part in filter(None, (row.get("error") or "").split(" | ")):
            name, _, message = part.partition(": ")
            errors[name] = message
        return cls(int(row["index"] or ""), row["arch"] or "", float(row["accuracy"] or ""),
                   values, errors, tuple(filter(None, (row.get("flags") or "").split(";"))),
                   float(row.get("seconds") or 0.0), row.get("settings") or "")


def columns(proxies: Sequence[str]) -> list[str]:
    return [*FIXED_COLUMNS, *proxies, *TAIL_COLUMNS]


def load_done(path: Path, proxies: Sequence[str], key: str) -> tuple[dict[int, ArchRow], int]:
    """Rows of an earlier run with the same settings, and how many rows were dropped."""
    if not path.is_file():
        return {}, 0
    done: dict[int, ArchRow] = {}
    dropped = 0
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        same_columns = list(reader.fieldnames or ()) == columns(proxies)
        for raw in reader:
            try:
                if not same_columns or raw.get("settings") != key:
                    raise ValueError("other settings")
                row = ArchRow.from_csv(raw, proxies)
            except (ValueError, TypeError, KeyError):
                # Other settings, or a line cut short by an interrupted write.
                dropped += 1
                continue
            done[row.index] = row
    return done, dropped


def write_rows(path: Path, proxies: Sequence[str], rows: Iterable[ArchRow]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns(proxies))
        writer.writeheader()
        for row in rows:
            writer.writerow(row.to_csv(proxies))
    tmp.replace(path)


class TableError(Exception):
    """A user-facing problem with per-arch CSVs given to a study."""


@dataclass
class ProxyTable:
    """Proxy values of a set of archs, one list per proxy aligned with `indices` (None: the
    proxy failed on that arch or the CSV has no row for it)."""

    indices: list[int]
    archs: list[str]
    accuracy: list[float]
    values: dict[str, list[Optional[float]]] = field(default_factory=dict)


def _float(text: Optional[str]) -> Optional[float]:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        raise TableError(f"proxy CSV not found: {path} (make one with `edgescore eval proxies`)")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        fixed = {*FIXED_COLUMNS, *TAIL_COLUMNS}
        return [c for c in (reader.fieldnames or ()) if c not in fixed], list(reader)


def load_table(paths: Sequence[Path], proxies: Optional[Sequence[str]] = None,
               limit: int = 0) -> ProxyTable:
    """Per-arch CSVs of `edgescore eval proxies` (e.g. one run per group of proxies over the
    same sample), merged on the arch index: the archs every CSV has, in the first CSV's order
    (its first `limit` rows), and each proxy column from the first CSV that has it."""
    read = [_read(p) for p in paths]
    first_rows = read[0][1][:limit] if limit else read[0][1]
    by_index = [{int(r["index"]): r for r in raw} for _, raw in read]
    rows = [r for r in first_rows if all(int(r["index"]) in b for b in by_index[1:])]
    table = ProxyTable([int(r["index"]) for r in rows], [r["arch"] for r in rows],
                       [float(r["accuracy"]) for r in rows])
    found: dict[str, list[Optional[float]]] = {}
    for (columns, _), rows_of in zip(read, by_index):
        for column in columns:
            if column not in found:
                found[column] = [_float(rows_of[i][column]) for i in table.indices]
    wanted = list(proxies) if proxies else list(found)
    unknown = [p for p in wanted if p not in found]
    if unknown:
        raise TableError(f"no column for {', '.join(unknown)} in {', '.join(map(str, paths))}; "
                         f"they have {', '.join(found)}")
    table.values = {p: found[p] for p in wanted}
    return table
