"""Packaging: the light extras install into fresh virtual environments without torch.

`[client]` brings only grpcio + protobuf; `[agent]` adds the runtimes but never torch. Both are
installed from this checkout (a real `pip install`), and their console scripts must start.
"""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=900, **kw)


def installed(python: Path) -> set[str]:
    out = run(str(python), "-m", "pip", "list", "--format=freeze").stdout
    return {line.split("==")[0].lower() for line in out.splitlines() if "==" in line}


def test_client_then_agent_extras_install_without_torch(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    # No build isolation: the build backend comes from this venv, installed just before.
    pip = [str(python), "-m", "pip", "install", "--quiet", "--no-build-isolation"]
    run(str(python), "-m", "pip", "install", "--quiet", "setuptools>=77", "wheel", env=env)

    run(*pip, f"{ROOT}[client]", env=env)
    packages = installed(python)
    assert "edgescore" in packages
    assert not packages & {"torch", "numpy", "onnxruntime"}, packages
    run(str(python), "-c", "import edgescore.client, edgescore.v1.scoring_pb2_grpc", cwd=tmp_path)
    assert "score" in run(str(env_dir / "bin" / "edgescore"), "--help").stdout
    # Nothing generic lands in site-packages.
    site = run(str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    top_level = {p.name for p in Path(site.stdout.strip()).iterdir()}
    assert not top_level & {"server", "client", "device_agent", "proto", "tests"}

    run(*pip, f"{ROOT}[agent]", env=env)
    packages = installed(python)
    assert "onnxruntime" in packages and "numpy" in packages
    assert "torch" not in packages, "the [agent] extra must not pull torch"
    code = ("import sys, edgescore.device_agent.main; "
            "assert 'torch' not in sys.modules and 'edgescore.server' not in sys.modules")
    run(str(python), "-c", code, cwd=tmp_path)
    assert "--device-class" in run(str(env_dir / "bin" / "edgescore-agent"), "--help").stdout

