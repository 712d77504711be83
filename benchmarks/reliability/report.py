"""The campaign's report: a markdown table of every scenario's figures, its findings, and the
same as JSON, written to --out."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from benchmarks.reliability.runner import Result

COLUMNS = ["scenario", "size", "requests", "errors by code", "item errors", "p50 ms", "p99 ms",
           "RSS MB before → after", "lost", "dup.", "crashes", "s"]


def _codes(codes: dict[str, int]) -> str:
    return ", ".join(f"{c} {n}" for c, n in codes.items()) or "none"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def markdown(results: list[Result], command: str, date: str) -> str:
    lines = [f"`{command}` ({date})", "", "| " + " | ".join(COLUMNS) + " |",
             "|" + "---|" * len(COLUMNS)]
    for r in results:
        cells = [r.scenario, r.size, str(r.requests), _codes(r.errors), _codes(r.item_errors),
                 _ms(r.p50_ms), _ms(r.p99_ms), f"{r.rss_before_mb:.0f} → {r.rss_after_mb:.0f}",
                 str(r.lost), str(r.duplicated), str(len(r.crashes)), f"{r.seconds:g}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Notes:", ""]
    lines += [f"- {r.scenario}: {note}" for r in results for note in r.notes]
    findings = [(r.scenario, f) for r in results for f in r.findings]
    lines += ["", f"Findings ({len(findings)}):", ""]
    lines += [f"- {scenario}: {finding}" for scenario, finding in findings] or ["- none"]
    return "\n".join(lines) + "\n"


def write(results: list[Result], out: Path, command: str, date: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "reliability.md").write_text(markdown(results, command, date))
    (out / "reliability.json").write_text(json.dumps(
        {"command": command, "date": date, "results": [asdict(r) for r in results]}, indent=2))
