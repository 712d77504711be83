"""The per-arch CSV of an evaluation: one row per arch, tagged with a hash of the settings that
produced it, so an interrupted run resumes where it stopped and a run with other settings never
reuses its rows."""

from __future__ import annotations

import csv
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
