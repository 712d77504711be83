"""`edgescore batch`: specs from CSV or JSONL in, one CSV row per candidate out, resumable.

Input rows: `arch` (the spec: an NB201 / NATS-SSS / FBNet string, or a JSON object for the dict
spaces), optional `id` (default: the row's line number in the file) and `space` (default: the
command's). Output rows are appended and flushed as results arrive, so a stopped batch resumes
where it stopped. A row is done when the server answered it (its `canonical` column is filled) and
none of its items failed for a passing reason: a row whose whole request failed (e.g. UNAVAILABLE),
or one whose proxy or device failed with a TRANSIENT code (a board that timed out or went away), is
scored again; a permanent item failure (a degenerate cell, an unsupported op) is an answer and
stays. On resume the output is rewritten (atomically) with its header and its done rows only, so a
retried spec never has two rows, and a row cut short by a killed batch is dropped. An output
written with other columns (other proxies or devices) is refused, not mixed with this layout.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from edgescore.client.api import Client
from edgescore.client.results import BatchItem

# Item codes that say "not now" rather than "no": the same request may well succeed on a rerun.
# A per-item RESOURCE_EXHAUSTED is a size or memory cap (an answer); the compute queue's retryable
# one fails the whole request, which is scored again anyway.
TRANSIENT = ("DEADLINE_EXCEEDED", "UNAVAILABLE", "ABORTED", "CANCELLED")
# One item's failure in the `error` column, as row_of writes it: "<item>: <CODE>: <message>",
# items joined by "; ".
_TRANSIENT_ITEM = re.compile(r"(?:^|; )[^:;]+: (?:" + "|".join(TRANSIENT) + "): ")


class BatchError(ValueError):
    """A malformed input file (the message names the line)."""


@dataclass(frozen=True)
class Spec:
    id: str
    space: str
    arch: Any


def read_specs(path: Path, default_space: str = "nb201") -> list[Spec]:
    """Specs from a .jsonl (one object per line) or a .csv file (a UTF-8 BOM is allowed)."""
    specs: list[Spec] = []
    lines: dict[str, int] = {}
    # utf-8-sig: files saved by Excel or Notepad start with a BOM, which would otherwise be
    # glued to the first column's name or make the first JSON line unreadable.
    with open(path, newline="", encoding="utf-8-sig") as fh:
        if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
            rows: Iterator[tuple[int, Any]] = ((n, _json_line(path, n, line))
                                               for n, line in enumerate(fh, 1) if line.strip())
        else:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or "arch" not in reader.fieldnames:
                raise BatchError(f"{path}: a CSV needs an 'arch' column")
            rows = ((n, row) for n, row in enumerate(reader, 2))
        try:
            for n, row in rows:
                if not isinstance(row, dict) or row.get("arch") in (None, ""):
                    raise BatchError(f"{path}:{n}: no 'arch'")
                arch = row["arch"]
                if isinstance(arch, str) and arch.lstrip().startswith("{"):
                    arch = _json_line(path, n, arch)
                # An explicit id of 0 is an id: only an absent or empty one takes the default.
                given = row.get("id")
                spec_id = str(n) if given in (None, "") else str(given)
                _check_id(path, n, spec_id, lines)
                specs.append(Spec(spec_id, str(row.get("space") or default_space), arch))
        except UnicodeDecodeError as exc:
            raise BatchError(f"{path}: not UTF-8 text: {exc}") from None
    return specs


def _check_id(path: Path, n: int, spec_id: str, lines: dict[str, int]) -> None:
    if spec_id in lines:
        raise BatchError(f"{path}:{n}: ids must be unique: '{spec_id}' is also the id of "
                         f"line {lines[spec_id]}")
    try:
        spec_id.encode("utf-8")
    except UnicodeEncodeError:
        # The id must come back unchanged from the output CSV, or resuming would retry it.
        raise BatchError(f"{path}:{n}: the id is not valid text: {spec_id!r}") from None
    lines[spec_id] = n


def _json_line(path: Path, n: int, text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise BatchError(f"{path}:{n}: not JSON: {exc}") from None


def _done_rows(out: Path) -> tuple[Optional[list[str]], list[list[str]]]:
    """The header of `out` (None: no complete header) and its done rows (see the module)."""
    if not out.exists():
        return None, []
    try:
        text = out.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BatchError(f"{out}: not a batch output (not UTF-8 text: {exc})") from None
    try:
        records = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise BatchError(f"{out}: not a batch output ({exc})") from None
    if text and not text.endswith("\n"):
        records = records[:-1]  # the batch was killed in the middle of writing this row
    if not records:
        return None, []
    header, kept, seen = records[0], [], set()
    if "id" not in header or "canonical" not in header:
        return header, []
    at_id, at_canonical = header.index("id"), header.index("canonical")
    at_error = header.index("error") if "error" in header else None
    for record in records[1:]:
        if (len(record) == len(header) and record[at_canonical]
                and not (at_error is not None and _TRANSIENT_ITEM.search(record[at_error]))
                and record[at_id] not in seen):
            seen.add(record[at_id])
            kept.append(record)
    return header, kept


def done_ids(out: Path) -> set[str]:
    """Ids of the rows of `out` that are done (see the module)."""
    header, kept = _done_rows(out)
    return set() if header is None or not kept else {r[header.index("id")] for r in kept}


def resume(out: Path, cols: Sequence[str]) -> set[str]:
    """Prepare `out` for a run writing `cols`: rewrite it with the header and the done rows only
    (a temporary file in the same folder, then os.replace) and return the done ids. BatchError
    when `out` has other columns."""
    header, kept = _done_rows(out)
    if header is not None and header != list(cols):
        raise BatchError(f"{out} has the columns {','.join(header)} but this run writes "
                         f"{','.join(cols)} (other --proxies or --device?): give another --out")
    if not out.exists():
        return set()
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        os.chmod(tmp, stat.S_IMODE(out.stat().st_mode))  # mkstemp's 0600 is not the user's
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(cols)
            writer.writerows(kept)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise
    at_id = list(cols).index("id")
    return {r[at_id] for r in kept}


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
    """Score the specs not done in `out`, appending a row each; returns how many were scored.
    `done`: the ids `resume(out, columns(proxies, devices))` returned, when the caller has
    prepared `out` itself; otherwise run_batch does (BatchError: `out` has other columns).
    Specs of several spaces go in one pass (one score_many per space)."""
    cols = columns(proxies, devices)
    skip = resume(out, cols) if done is None else done
    todo = [s for s in specs if s.id not in skip]
    new_file = not out.exists() or out.stat().st_size == 0
    out.parent.mkdir(parents=True, exist_ok=True)
    scored = 0
    # backslashreplace: an arch that is not valid text (a lone surrogate from a JSON escape) is
    # still written, readably, with the error the request got.
    with open(out, "a", newline="", encoding="utf-8", errors="backslashreplace") as fh:
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
