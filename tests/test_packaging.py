"""Packaging: the light extras install into fresh virtual environments without torch.

`[client]` brings only grpcio + protobuf; `[agent]` adds the runtimes but never torch. Both are
installed from this checkout (a real `pip install`), and their console scripts must start. The
fresh environment gets the grpcio/protobuf that Python 3.9 boards get (the newest with cp39 wheels),
and its agent and CLI then work against the server of the development environment (grpcio 1.85,
protobuf 7): one set of stubs serves both.
"""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import grpc
import pytest
from conftest import QUICK_MEASUREMENT

from edgescore.client.launcher import LocalStack

ROOT = Path(__file__).resolve().parents[1]
# The newest releases with Python 3.9 wheels (grpcio 1.81 and protobuf 7 need 3.10).
BOARD_RUNTIME = ("grpcio==1.80.1", "protobuf==6.33.6")

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
    constraints = tmp_path / "board-runtime.txt"
    constraints.write_text("\n".join(BOARD_RUNTIME) + "\n")
    pip = [str(python), "-m", "pip", "install", "--quiet", "--no-build-isolation",
           "--constraint", str(constraints)]
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
    assert not top_level & {"server", "client", "device_agent", "evaluation", "integrations",
                            "proto", "tests"}

    run(*pip, f"{ROOT}[agent]", env=env)
    packages = installed(python)
    assert "onnxruntime" in packages and "numpy" in packages
    assert "torch" not in packages, "the [agent] extra must not pull torch"
    code = ("import sys, edgescore.device_agent.main; "
            "assert 'torch' not in sys.modules and 'edgescore.server' not in sys.modules")
    run(str(python), "-c", code, cwd=tmp_path)
    assert "--device-class" in run(str(env_dir / "bin" / "edgescore-agent"), "--help").stdout


    # The board-era agent and CLI against this environment's server, over the real protocol.
    versions = run(str(python), "-c", "import grpc, google.protobuf as p; "
                   "print(grpc.__version__, p.__version__)").stdout.split()
    assert versions == [v.split("==")[1] for v in BOARD_RUNTIME]
    with LocalStack(agents={}) as stack:
        stack.start_agent("board-py", python=str(python))
        stack.wait_for_agents({"board-py": 1})
        spaces = run(str(env_dir / "bin" / "edgescore"), "--server", stack.target, "spaces")
        assert "nb201" in spaces.stdout
        # The Optuna searches are an extra: without it, a message naming it, not a traceback.
        done = subprocess.run([str(env_dir / "bin" / "edgescore"), "--server", stack.target,
                               "search", "--algo", "nsga2", "--device", "board-py", "--budget",
                               "1", "--out", str(tmp_path / "search")], capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 1 and "edgescore[optuna]" in done.stderr, done.stderr
        with stack.client(timeout=300) as client:
            result = client.score("|nor_conv_3x3~0|+|skip_connect~0|none~1|+"
                                  "|nor_conv_1x1~0|avg_pool_3x3~1|skip_connect~2|",
                                  proxies=["params"], devices=["board-py"],
                                  measurement=QUICK_MEASUREMENT)
        latency = result.latencies["board-py"]
        assert latency.code == grpc.StatusCode.OK, latency.message
        assert latency.median_ms > 0 and latency.runtime == "onnxruntime"
