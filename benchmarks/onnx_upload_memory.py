"""The server's memory across malformed ONNX uploads: RSS of the server and its compute workers
before, during and after a few hundred bad uploads through a real server (LocalStack).

The uploads are copies of one valid model (a conv net of `--megabytes` of weights) with bits
flipped, bytes truncated or a tensor's shape changed: some fail to parse (INVALID_ARGUMENT), some
parse and fail in the workers or on conversion, some score. Each is sent with #Params and synflow.
Prints the RSS (MiB) of the server process and of each worker after the warm-up upload and after
every `--report-every` uploads, then the answer codes.

    .venv/bin/python benchmarks/onnx_upload_memory.py --uploads 400
"""

from __future__ import annotations

import argparse
import collections
import io
import os
import random
import time

import onnx
import torch
from torch import nn

from edgescore.client import EdgescoreError
from edgescore.client.launcher import LocalStack


def valid_model(megabytes: float) -> bytes:
    width = max(8, int((megabytes * 2**20 / 4 / 9 / 4) ** 0.5))  # four 3x3 convs of `width`
    layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1), nn.ReLU()]
    for _ in range(4):
        layers += [nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10)]
    buffer = io.BytesIO()
    torch.onnx.export(nn.Sequential(*layers).eval(), (torch.zeros(1, 3, 16, 16),), buffer,
                      dynamo=False, opset_version=17, input_names=["input"],
                      dynamic_axes={"input": {0: "batch"}})
    return buffer.getvalue()


def malformed(data: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(3)
    if kind == 0:  # bit flips anywhere
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        return bytes(out)
    if kind == 1:  # truncated
        return data[:rng.randrange(1, len(data))]
    model = onnx.load_from_string(data)  # a weight whose shape no longer matches its data
    tensor = rng.choice(list(model.graph.initializer))
    tensor.dims[0] = rng.choice([0, 1, tensor.dims[0] * 2, 2**20])
    return model.SerializeToString()


def rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children[ppid].append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children[todo.pop()]:
            found.append(child)
            todo.append(child)
    return found


def report(label: str, server_pid: int) -> None:
    workers = " ".join(f"{rss_mib(p):6.0f}" for p in descendants(server_pid))
    print(f"{label:>14}: server {rss_mib(server_pid):6.0f} MiB | forkserver and workers "
          f"{workers} MiB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=400)
    parser.add_argument("--megabytes", type=float, default=8.0)
    parser.add_argument("--report-every", type=int, default=100)
    parser.add_argument("--in-flight", type=int, default=4)
    args = parser.parse_args()
    rng = random.Random(0)
    data = valid_model(args.megabytes)
    print(f"valid model: {len(data) / 2**20:.1f} MiB; {args.uploads} malformed uploads, "
          f"{args.in_flight} in flight", flush=True)
    codes: collections.Counter = collections.Counter()
    with LocalStack(agents={}) as stack, stack.client(timeout=600) as client:
        assert stack.server is not None
        pid = stack.server.pid
        client.score(data, ["params", "synflow"], space="onnx")
        report("warm", pid)
        start, sent = time.perf_counter(), 0
        while sent < args.uploads:
            batch = [malformed(data, rng) for _ in range(min(args.report_every,
                                                             args.uploads - sent))]
            for item in client.score_many(batch, ["params", "synflow"], space="onnx",
                                          max_in_flight=args.in_flight):
                if item.ok:
                    for proxy in item.result.proxies.values():
                        codes[f"item {proxy.code.name}"] += 1
                else:
                    error = item.error
                    codes[error.code.name if isinstance(error, EdgescoreError)
                          else type(error).__name__] += 1
            sent += len(batch)
            report(f"after {sent}", pid)
        time.sleep(2)
        report("idle 2 s later", pid)
    print(f"{args.uploads} uploads in {time.perf_counter() - start:.0f} s; answers: "
          + ", ".join(f"{k} {v}" for k, v in sorted(codes.items())))


if __name__ == "__main__":
    main()
