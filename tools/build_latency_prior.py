"""Write the latency predictor's shipped prior (server/data/latency_prior_<space>.npz) from the
public HELP tables in ../shared/data (see server/data/README.md for provenance).

    python tools/build_latency_prior.py [--shared ../shared/data]

Each file holds `archs` (canonical specs), `devices` (HELP's device settings) and `latency_ms`
(float32, archs x devices): the dev split only, so nothing held out ships with the server.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from edgescore.server.scoring.transfer import read_device_table
from edgescore.server.spaces.registry import get_space

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"nb201": "nb201/help_latency_27devices_dev.csv",
           "fbnet": "fbnet/help_latency_27devices_dev.csv"}


def build(shared: Path, space: str) -> Path:
    relative = SOURCES[space]
    table = read_device_table(shared / relative, space,
                              lambda spec: get_space(space).parse(spec).canonical)
    out = ROOT / "server" / "data" / f"latency_prior_{space}.npz"
    np.savez_compressed(out, archs=np.asarray(table.archs), devices=np.asarray(table.devices),
                        latency_ms=table.latency_ms.astype(np.float32),
                        source=np.asarray(f"HELP (HayeonLee/HELP@45f70eb, MIT): {relative}"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    for space in SOURCES:
        path = build(args.shared, space)
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
