"""The reliability campaign's short version (`python -m benchmarks.reliability --short`): every
scenario against real servers and agents, judged by the campaign itself. A finding fails this
test unless it is one of the known problems below, each tied to the issue that removes it, so a
new problem shows up here at once."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (scenario, the finding's text as a regular expression, the issue that fixes it)
KNOWN_FINDINGS = [
    ("onnx_bombs", r"server RSS grew .*", "#14 point 7: memory after bad uploads"),
]


def unknown(findings: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(scenario, text) for scenario, text in findings
            if not any(scenario == s and re.fullmatch(pattern, text, re.DOTALL)
                       for s, pattern, _ in KNOWN_FINDINGS)]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_short_campaign_finds_no_new_problem(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "benchmarks.reliability", "--short", "--out",
                          str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=840)
    report = json.loads((tmp_path / "reliability.json").read_text())
    results = {r["scenario"]: r for r in report["results"]}
    assert set(results) == {"load", "stream_fairness", "malformed", "onnx_bombs",
                            "absurd_settings", "tokens", "agent_kill", "server_kill_batch"}
    for r in results.values():
        assert not r["crashes"], (r["scenario"], r["crashes"])
        assert r["lost"] == r["duplicated"] == 0, r
        assert r["requests"] > 0, r
    findings = [(r["scenario"], f) for r in results.values() for f in r["findings"]]
    assert not unknown(findings), run.stdout[-4000:] + run.stderr[-2000:]
    assert run.returncode == (1 if findings else 0)


def test_known_findings_match_only_what_they_name() -> None:
    assert not unknown([("onnx_bombs", "server RSS grew 500 -> 1400 MB")])
    assert unknown([("absurd_settings", "accepted (must be refused): threads 10^6")])
    assert unknown([("load", "Score: 1 call(s) answered INTERNAL: 'x'")])
