"""Plain-text tables for the CLI."""

from __future__ import annotations

from collections.abc import Sequence

from edgescore.client.results import ScoreResult

# Five NB201 cells spanning the space: the best-known cell, a ResNet-like one, a pooling-heavy
# one, a cheap 1x1 one, and one with `none` edges.
DEMO_ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|",
    "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|",
    "|avg_pool_3x3~0|+|avg_pool_3x3~0|avg_pool_3x3~1|+|skip_connect~0|avg_pool_3x3~1|avg_pool_3x3~2|",
    "|nor_conv_1x1~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|nor_conv_1x1~2|",
    "|none~0|+|skip_connect~0|nor_conv_3x3~1|+|none~0|nor_conv_1x1~1|skip_connect~2|",
]


def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _num(value: float | None) -> str:
    if value is None:
        return "failed"
    return f"{value:.6g}" if abs(value) < 1e6 else f"{value:.4e}"


def results_table(results: Sequence[ScoreResult], proxies: Sequence[str],
                  devices: Sequence[str]) -> str:
    header = ["arch", *proxies]
    for d in devices:
        header += [f"{d} median ms", "p90 ms", "n", "source"]
    rows = [header]
    for r in results:
        row = [r.canonical_arch[:100]]
        row += [_num(r.proxies[p].value) if p in r.proxies else "-" for p in proxies]
        for d in devices:
            lat = r.latencies.get(d)
            if lat is None or not lat.ok:
                row += ["failed" if lat else "-", "", "", lat.message[:40] if lat else ""]
            else:
                row += [f"{lat.median_ms:.3f}", f"{lat.p90_ms:.3f}", str(lat.n),
                        f"{lat.provenance.lower()} by {lat.agent_id}"]
        rows.append(row)
    return format_table(rows)
