"""Agent overhead and repeatability on one machine.

One NB201 network is exported to ONNX exactly as the server does (same seed, so the same bytes
and sha256), then timed alternately (a) directly with onnxruntime in a bare loop in this process
and (b) as a job through a real edgescore-server + edgescore-agent (LocalStack subprocesses),
`--repeats` times each, with the same protocol and threads=1. Prints the ratio of the agent's
median of job medians to the direct one (target 0.95-1.05) and the coefficient of variation of
the agent's job medians (target <= 3 %).

    .venv/bin/python benchmarks/agent_vs_direct.py            # server-side tooling: needs torch
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import time

import numpy as np
import onnxruntime as ort
import torch

from edgescore.client.launcher import LocalStack
from edgescore.device_agent.capabilities import cpu_model
from edgescore.server.export.exporter import EXPORT_SEED
from edgescore.server.export.onnx_export import export_onnx
from edgescore.server.spaces.nb201 import SPACE

ARCH = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
        "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")
DEVICE_CLASS = "bench-cpu"


def export(arch: str) -> tuple[bytes, tuple[int, ...]]:
    parsed = SPACE.parse(arch)
    shape = (1, *parsed.input_shape)
    torch.manual_seed(EXPORT_SEED)  # the server's export seed: byte-identical artifact
    return export_onnx(SPACE.build_exportable(parsed), shape), shape


def direct_median(model: bytes, shape: tuple[int, ...], protocol: dict) -> float:
    """Median ms of a bare onnxruntime loop: warm-up, then runs until min_runs and min_seconds."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = protocol["threads"]
    session = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    feeds = {session.get_inputs()[0].name:
             np.random.default_rng(0).standard_normal(shape, dtype=np.float32)}
    for _ in range(protocol["warmup_runs"]):
        session.run(None, feeds)
    samples = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        session.run(None, feeds)
        t1 = time.perf_counter()
        samples.append((t1 - t0) * 1000.0)
        if t1 - start >= protocol["max_seconds"] or (
                len(samples) >= protocol["min_runs"] and t1 - start >= protocol["min_seconds"]):
            return statistics.median(samples)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default=ARCH)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--min-seconds", type=float, default=3.0)
    p.add_argument("--min-runs", type=int, default=100)
    p.add_argument("--warmup-runs", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    protocol = {"warmup_runs": args.warmup_runs, "min_runs": args.min_runs,
                "min_seconds": args.min_seconds, "max_seconds": 60.0, "threads": args.threads}

    model, shape = export(args.arch)
    load_before = os.getloadavg()[0]  # other processes on the machine are the main noise source
    sha = hashlib.sha256(model).hexdigest()
    direct, agent = [], []
    with LocalStack(agents={DEVICE_CLASS: 1}) as stack, stack.client() as client:
        for i in range(args.repeats):
            direct.append(direct_median(model, shape, protocol))
            result = client.score(args.arch, ["params"], [DEVICE_CLASS], measurement=protocol)
            lat = result.latencies[DEVICE_CLASS]
            if not lat.ok:
                raise SystemExit(f"agent job failed: {lat.message}")
            if lat.artifact_sha256 != sha:
                raise SystemExit("the server exported different bytes; comparison is void")
            agent.append(lat.median_ms)
            print(f"repeat {i + 1}: direct {direct[-1]:.3f} ms  agent {agent[-1]:.3f} ms "
                  f"(n={lat.n})", flush=True)

    ratio = statistics.median(agent) / statistics.median(direct)
    # Each agent job runs right after its direct twin, so the paired ratio cancels slow drifts of
    # the machine's speed (other tenants, a busy SMT sibling) that the ratio of medians keeps.
    paired = statistics.median(a / d for a, d in zip(agent, direct))
    cv_agent = statistics.stdev(agent) / statistics.mean(agent)
    cv_direct = statistics.stdev(direct) / statistics.mean(direct)
    summary = {
        "machine": f"{platform.machine()} {cpu_model()}".strip(),
        "cpus": os.cpu_count(), "load_avg_1min_before_after": [round(load_before, 2),
                                                               round(os.getloadavg()[0], 2)],
        "python": platform.python_version(), "onnxruntime": ort.__version__,
        "arch": args.arch, "input_shape": list(shape), "protocol": protocol,
        "direct_medians_ms": [round(v, 4) for v in direct],
        "agent_medians_ms": [round(v, 4) for v in agent],
        "ratio_agent_over_direct": round(ratio, 4),
        "median_paired_ratio": round(paired, 4),
        "cv_agent_job_medians": round(cv_agent, 4), "cv_direct_medians": round(cv_direct, 4),
    }
    print(json.dumps(summary, indent=2))
    print(f"agent/direct median ratio {ratio:.3f} (target 0.95-1.05), paired {paired:.3f}; "
          f"CV of {len(agent)} agent job medians {cv_agent:.1%} (target <= 3 %), "
          f"direct {cv_direct:.1%}")


if __name__ == "__main__":
    main()
