"""Absurd settings: measurement settings (threads, runs, seconds, batch, shape, cooldown), proxy
settings, sizes and timeouts far past anything sensible, each sent to the real server with the
replay agent as the board (it times nothing, so an accepted setting costs nothing). A setting
that must be refused (INVALID_ARGUMENT or RESOURCE_EXHAUSTED, for the call or its item) but is
accepted is a finding (issue #14 point 2)."""

from __future__ import annotations

from typing import Any

from benchmarks.reliability import runner
from edgescore.client.launcher import LocalStack
from edgescore.v1 import common_pb2, scoring_pb2

OWN_STACK = False
U32, NAN, INF = 2 ** 32 - 1, float("nan"), float("inf")
REFUSALS = (3, 8, 11)  # INVALID_ARGUMENT, RESOURCE_EXHAUSTED, OUT_OF_RANGE
# name: (where, field values, must it be refused)
CASES: dict[str, tuple[str, dict[str, Any], bool]] = {
    "threads 10^6": ("measure", {"threads": 10 ** 6}, True),
    "threads 2^32-1": ("measure", {"threads": U32}, True),
    "warmup_runs 2^32-1": ("measure", {"warmup_runs": U32}, True),
    "min_runs 2^32-1": ("measure", {"min_runs": U32}, True),
    "max_seconds 1e300": ("measure", {"max_seconds": 1e300}, True),
    "max_seconds NaN": ("measure", {"max_seconds": NAN}, True),
    "min_seconds -inf": ("measure", {"min_seconds": -INF}, True),
    "measurement batch 2^32-1": ("measure", {"batch_size": U32}, True),
    "input_shape 1e9": ("measure", {"input_shape": [1, 3, 10 ** 9, 10 ** 9]}, True),
    "cooldown NaN": ("measure", {"cooldown_below_celsius": NAN}, True),
    "cooldown 1e9": ("measure", {"cooldown_below_celsius": 1e9}, False),  # never waits
    "format 99": ("measure", {"format": 99}, True),
    "proxy batch 2^32-1": ("proxy", {"batch_size": U32}, True),
    "proxy repeats 2^32-1": ("proxy", {"repeats": U32}, True),
    "proxy init unknown": ("proxy", {"init": "x" * 5000}, True),
    "proxy data kind 99": ("proxy", {"data": common_pb2.DataSource(kind=99)}, True),
    "proxy extra 10k keys": ("proxy", {"extra": {f"k{i}": "v" * 10 for i in range(10_000)}}, True),
    "proxy seed 2^64-1": ("proxy", {"seed": 2 ** 64 - 1}, False),
    "num_classes 2^32-1": ("arch", {"num_classes": U32}, True),
    "input_resolution 2^32-1": ("arch", {"input_resolution": U32}, True),
    "latency timeout NaN": ("request", {"latency_timeout_seconds": NAN}, True),
    "latency timeout -1": ("request", {"latency_timeout_seconds": -1.0}, True),
    "priority -2^31": ("request", {"priority": -2 ** 31}, False),
}


def request(arch: str, where: str, values: dict[str, Any]) -> scoring_pb2.ScoreRequest:
    proxy = common_pb2.ProxyRequest(name="synflow" if where == "proxy" else "params")
    device = common_pb2.DeviceTarget(device_class=runner.REPLAY_BOARD)
    spec = common_pb2.ArchSpec(nb201=arch)
    target = {"measure": device.settings, "proxy": proxy.settings, "arch": spec}.get(where)
    for field, value in values.items():
        if where == "request":
            continue
        if field == "extra":
            target.extra.update(value)  # type: ignore[union-attr]
        elif isinstance(value, list):
            getattr(target, field).extend(value)
        elif field == "data":
            target.data.CopyFrom(value)  # type: ignore[union-attr]
        else:
            setattr(target, field, value)
    message = scoring_pb2.ScoreRequest(arch=spec, proxies=[proxy], devices=[device])
    if where == "request":
        for field, value in values.items():
            setattr(message, field, value)
    return message


def run(size: str, s: LocalStack) -> runner.Result:
    result, tally, started = runner.begin("absurd_settings", f"{len(CASES)} settings", s)
    accepted = []
    (arch,) = runner.replay_archs(1, seed=5)
    with runner.channel(s) as chan:
        stub = runner.Stubs.of(chan).scoring
        for name, (where, values, must_refuse) in CASES.items():
            message = request(arch, where, values)
            reply = runner.timed(tally, f"Score {name}", lambda r=message: stub.Score(
                r, timeout=120, metadata=runner.AUTH))
            if reply is None:
                continue
            tally.result_items(reply)
            items = {"measure": reply.latencies, "proxy": reply.proxies}.get(where, [])
            if must_refuse and not (items and all(i.status.code in REFUSALS for i in items)):
                accepted.append(name)
    runner.finish(result, s, tally, started)
    if accepted:
        result.findings.append(f"accepted (must be refused): {', '.join(accepted)}")
    return result
