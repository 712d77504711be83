"""What every scenario shares: a real stack on loopback, raw gRPC calls whose status is counted,
RSS of the server's process tree, and the result a scenario hands to the report and the judge."""

from __future__ import annotations

import contextlib
import csv
import os
import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import grpc

import edgescore
from edgescore.client.launcher import LocalStack
from edgescore.device_agent.replay import nb201_key
from edgescore.transport import CHANNEL_OPTIONS
from edgescore.v1 import common_pb2, fleet_pb2_grpc, scoring_pb2, scoring_pb2_grpc

SHARED = Path(os.environ.get("EDGESCORE_SHARED", Path(__file__).resolve().parents[3] / "shared"))
REPLAY_CSV = SHARED / "data" / "nb201" / "hw_nas_bench_c10_dev.csv"
REPLAY_BOARD = "raspi4"
# Fast measurements for real agents: the protocol is the same, only shorter.
QUICK_MEASUREMENT = common_pb2.MeasurementSettings(warmup_runs=1, min_runs=5, min_seconds=0.02,
                                                   max_seconds=5.0)
CALL_FAILURES = ("INTERNAL", "UNKNOWN")
# The shared stack demands both tokens, so that every scenario's traffic passes the checks a
# deployment has; its clients present the API token (AUTH) unless a scenario says otherwise.
API_TOKEN, FLEET_TOKEN = "campaign-api-token", "campaign-fleet-token"


@dataclass
class Result:
    """One scenario's figures; `findings` are the problems the scenario judged, one line each."""

    scenario: str
    size: str
    requests: int = 0
    errors: dict[str, int] = field(default_factory=dict)       # call-level status -> count
    item_errors: dict[str, int] = field(default_factory=dict)  # per proxy / latency item
    p50_ms: float | None = None  # of the unary calls; a stream's duration is no latency
    p99_ms: float | None = None
    rss_before_mb: float = 0.0
    rss_after_mb: float = 0.0
    lost: int = 0
    duplicated: int = 0
    crashes: list[str] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Tally:
    """Thread-safe counts of call statuses, latencies and per-item codes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.codes: Counter[str] = Counter()
        self.items: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.failures: Counter[tuple[str, str]] = Counter()  # (label, code) of INTERNAL / UNKNOWN
        self.failure_details: dict[tuple[str, str], str] = {}

    def call(self, label: str, code: str, seconds: float | None, details: str = "") -> None:
        with self._lock:
            self.codes[code] += 1
            if seconds is not None:
                self.latencies.append(seconds)
            if code in CALL_FAILURES:
                self.failures[label, code] += 1
                self.failure_details.setdefault((label, code), details[:200])

    def item(self, code: str) -> None:
        with self._lock:
            self.items[code] += 1

    def result_items(self, result: scoring_pb2.ScoreResult) -> None:
        for item in [*result.proxies, *result.latencies]:
            if item.status.code:
                self.item(code_name(item.status.code))

    def fill(self, result: Result) -> None:
        result.requests = sum(self.codes.values())
        result.errors = {c: n for c, n in sorted(self.codes.items()) if c != "OK"}
        result.item_errors = dict(sorted(self.items.items()))
        if self.latencies:
            ms = sorted(x * 1000 for x in self.latencies)
            result.p50_ms = round(statistics.median(ms), 1)
            result.p99_ms = round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 1)
        for (label, code), n in sorted(self.failures.items()):
            result.findings.append(f"{label}: {n} call(s) answered {code}: "
                                   f"{self.failure_details[label, code]!r}")


def read_stream(tally: Tally, responses: Any, ids: list[str], result: Result) -> None:
    """Read a ScoreStream to its end: its status, each item's codes, and the request ids in
    `ids` answered never (lost) or more than once (duplicated) into `result`."""
    seen: Counter[str] = Counter()
    try:
        for item in responses:
            seen[item.request_id] += 1
            if item.HasField("error"):
                tally.item(code_name(item.error.code))
            else:
                tally.result_items(item.result)
        tally.call("ScoreStream", "OK", None)
    except grpc.RpcError as exc:
        tally.call("ScoreStream", exc.code().name, None, exc.details() or "")
    result.lost = sum(1 for i in ids if i not in seen)
    result.duplicated = sum(n - 1 for n in seen.values() if n > 1)


def begin(scenario: str, size: str, s: LocalStack) -> tuple[Result, Tally, float]:
    """A scenario's result and tally, its start time, and the server's RSS before it."""
    result = Result(scenario, size)
    if s.server is not None:
        result.rss_before_mb = tree_rss_mb(s.server.pid)
    return result, Tally(), time.monotonic()


def code_name(number: int) -> str:
    return next((s.name for s in grpc.StatusCode if s.value[0] == number), f"CODE_{number}")


def timed(tally: Tally, label: str, call: Callable[[], Any]) -> Any:
    """Run one RPC, count its status; returns the response or None."""
    start = time.monotonic()
    try:
        response = call()
    except grpc.RpcError as exc:
        tally.call(label, exc.code().name, time.monotonic() - start, exc.details() or "")
        return None
    tally.call(label, "OK", time.monotonic() - start)
    return response


def channel(stack: LocalStack) -> grpc.Channel:
    return grpc.insecure_channel(stack.target, options=CHANNEL_OPTIONS)


def token_metadata(token: str) -> list[tuple[str, str]] | None:
    return [(edgescore.TOKEN_METADATA_KEY, token)] if token else None


AUTH = token_metadata(API_TOKEN)


@dataclass
class Stubs:
    scoring: scoring_pb2_grpc.ScoringServiceStub
    fleet: fleet_pb2_grpc.FleetServiceStub

    @classmethod
    def of(cls, chan: grpc.Channel) -> Stubs:
        return cls(scoring_pb2_grpc.ScoringServiceStub(chan), fleet_pb2_grpc.FleetServiceStub(chan))


def replay_archs(n: int, seed: int = 0) -> list[str]:
    """`n` distinct NB201 cells the replay table has a latency for (repeating past its size)."""
    with REPLAY_CSV.open(newline="") as f:
        cells = sorted({nb201_key(r["arch"]) for r in csv.DictReader(f)
                        if r.get(f"c10_{REPLAY_BOARD}_latency")})
    random.Random(seed).shuffle(cells)
    return [cells[i % len(cells)] for i in range(n)]


def score_request(arch: str, proxies: Sequence[str], devices: Sequence[str] = (),
                  request_id: str = "", settings: common_pb2.MeasurementSettings | None = None,
                  ) -> scoring_pb2.ScoreRequest:
    return scoring_pb2.ScoreRequest(
        request_id=request_id, arch=common_pb2.ArchSpec(nb201=arch),
        proxies=[common_pb2.ProxyRequest(name=p) for p in proxies],
        devices=[common_pb2.DeviceTarget(device_class=d, settings=settings) for d in devices])


@contextlib.contextmanager
def stack(replay_agents: int = 1, token: str = "", api_token: str = "",
          ) -> Iterator[LocalStack]:
    """A server (two compute workers, its own store) with `replay_agents` HW-NAS-Bench agents of
    class raspi4, which answer NB201 jobs from the table at once."""
    with LocalStack(agents={}, server_args=["--compute-workers", "2"], token=token,
                    api_token=api_token) as s:
        for _ in range(replay_agents):
            start_replay_agent(s)
        s.wait_for_agents({REPLAY_BOARD: replay_agents})
        yield s


def shared_stack() -> contextlib.AbstractContextManager[LocalStack]:
    """The stack the scenarios that kill nothing share: tokens on, one replay agent."""
    return stack(replay_agents=1, token=FLEET_TOKEN, api_token=API_TOKEN)


def start_replay_agent(s: LocalStack) -> Any:
    return s.start_agent(REPLAY_BOARD, extra=["--replay", "hw-nas-bench", "--csv", str(REPLAY_CSV),
                                              "--device", REPLAY_BOARD])


def descendants(pid: int) -> list[int]:
    """`pid` and every process descended from it (its compute workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo += children.get(found[-1], [])
    return found


def tree_rss_mb(pid: int) -> float:
    """Resident memory of `pid` and its descendants, in MB."""
    total = 0
    for current in descendants(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return round(total / 1024, 1)


def crashes(s: LocalStack, killed: set[int] = frozenset()) -> list[str]:  # type: ignore[assignment]
    """Processes of the stack that exited though nobody stopped them (`killed`: pids we killed)."""
    dead = []
    if s.server is None or s.server.poll() is not None:
        code = s.server.returncode if s.server else "gone"
        dead.append(f"server exited ({code}); log tail: {s.read_log('server.log')[-400:]!r}")
    for proc in s.agents:
        if proc.pid not in killed and proc.poll() is not None:
            dead.append(f"agent pid {proc.pid} exited ({proc.returncode})")
    return dead


def judge(result: Result) -> Result:
    """Turn crashes and lost / duplicated results into findings (call failures come from Tally)."""
    result.findings += [f"crash: {c}" for c in result.crashes]
    if result.lost:
        result.findings.append(f"{result.lost} result(s) lost")
    if result.duplicated:
        result.findings.append(f"{result.duplicated} result(s) duplicated")
    return result


def finish(result: Result, s: LocalStack, tally: Tally, started: float,
           killed: set[int] = frozenset()) -> Result:  # type: ignore[assignment]
    """Fill the common figures after a scenario's traffic (before the stack stops)."""
    tally.fill(result)
    result.crashes = crashes(s, killed)
    if s.server is not None and s.server.poll() is None:
        result.rss_after_mb = tree_rss_mb(s.server.pid)
    result.seconds = round(time.monotonic() - started, 1)
    return judge(result)
