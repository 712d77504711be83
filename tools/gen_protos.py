"""Regenerate the Python stubs under edgescore/v1 from proto/edgescore/v1/*.proto.

`python tools/gen_protos.py` writes them; `--check` regenerates into a temporary folder and exits
non-zero when the committed stubs differ (CI runs this so stale stubs cannot land).

The generator is pinned and runs from its own folder (`.cache/`, installed on first use), not from
the project's environment: the stubs' gencode version is the oldest protobuf/grpcio runtime they
accept, and grpcio-tools 1.80.1 (gencode protobuf 6.31.1, grpc 1.80.1) keeps the agent and client
installable on Python 3.9 boards, whose newest wheels are grpcio 1.80.1 and protobuf 6.33.6, while
newer runtimes (grpcio 1.85, protobuf 7) load the same stubs.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = "grpcio-tools==1.80.1"  # keep pyproject's grpcio/protobuf floors equal to its gencode
TOOLS_DIR = ROOT / ".cache" / GENERATOR.replace("==", "-")
PROTO_ROOT = ROOT / "proto"
PACKAGE_DIR = Path("edgescore") / "v1"


def _tools_env() -> dict[str, str]:
    """An environment whose imports find the pinned generator first (installed once)."""
    if not (TOOLS_DIR / "grpc_tools").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-warn-conflicts",
                        "--disable-pip-version-check", "--target", str(TOOLS_DIR), GENERATOR],
                       check=True)
    return {**os.environ, "PYTHONPATH": str(TOOLS_DIR), "PYTHONNOUSERSITE": "1"}


def generate(out_dir: Path) -> list[Path]:
    protos = sorted((PROTO_ROOT / PACKAGE_DIR).glob("*.proto"))
    (out_dir / PACKAGE_DIR).mkdir(parents=True, exist_ok=True)
    args = [
        sys.executable, "-m", "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(p.relative_to(PROTO_ROOT)) for p in protos],
    ]
    if subprocess.run(args, env=_tools_env()).returncode != 0:
        raise SystemExit("protoc failed")
    init = out_dir / PACKAGE_DIR / "__init__.py"
    init.write_text(
        '"""Generated gRPC stubs of the edgescore v1 contract (tools/gen_protos.py)."""\n'
    )
    return sorted(p.relative_to(out_dir) for p in (out_dir / PACKAGE_DIR).iterdir() if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed stubs are stale")
    ns = parser.parse_args()
    if not ns.check:
        for rel in generate(ROOT):
            print(f"wrote {rel}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        committed = sorted(
            p.relative_to(ROOT) for p in (ROOT / PACKAGE_DIR).iterdir() if p.is_file()
        )
        stale = [str(r) for r in fresh if not (ROOT / r).exists()
                 or not filecmp.cmp(Path(tmp) / r, ROOT / r, shallow=False)]
        stale += [str(r) for r in committed if r not in fresh]
    if stale:
        print("stale generated stubs (run `make protos`): " + ", ".join(stale), file=sys.stderr)
        return 1
    print("generated stubs are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
