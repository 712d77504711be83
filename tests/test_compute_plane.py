"""The compute plane in process: its fair, bounded queue, and real worker processes that compute
what the engine computes, drop abandoned work, and are replaced past their time and memory caps."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from edgescore.server.compute.fairness import FairQueue, QueueFull
from edgescore.server.compute.flights import Flights
from edgescore.server.compute.local import LocalBackend
from edgescore.server.compute.plane import Caller, ComputePlane
from edgescore.server.compute.units import ArchRef, ExportUnit, ProxyUnit
from edgescore.server.errors import DeadlineExceeded, ResourceExhausted, ServerError
from edgescore.server.proxies import engine
from edgescore.server.proxies.base import SettingsOverride
from edgescore.server.spaces import registry
from edgescore.v1 import common_pb2

ARCH = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
        "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")
# Minutes of work on one core: it only ever ends by being stopped.
ENDLESS = (("naswot", SettingsOverride(seed=0, repeats=100, batch_size=128)),)


# -- the queue ----------------------------------------------------------------------------------


def test_fair_queue_takes_turns_across_clients_then_lanes() -> None:
    queue: FairQueue[str] = FairQueue(capacity=100, per_client=100)
    for i in range(20):
        queue.push(f"a-stream-{i}", "a", "stream")
    queue.push("a-unary", "a", "unary")
    queue.push("b-1", "b")
    queue.push("b-2", "b")
    order = [queue.pop().item for _ in range(6)]
    # A newcomer is served next, then turns alternate; a's unary call does not wait behind
    # a's stream.
    assert order == ["b-1", "a-unary", "b-2", "a-stream-0", "a-stream-1", "a-stream-2"]
    assert len(queue) == 17


def test_fair_queue_bounds_and_cancellation() -> None:
    queue: FairQueue[int] = FairQueue(capacity=3, per_client=2)
    first = queue.push(1, "a")
    queue.push(2, "a")
    with pytest.raises(QueueFull, match="most one client"):
        queue.push(3, "a")
    queue.push(3, "b")
    with pytest.raises(QueueFull, match="capacity"):
        queue.push(4, "c")
    assert queue.cancel(first) and not queue.cancel(first)
    queue.push(4, "c")  # the cancelled entry no longer counts
    assert [queue.pop().item for _ in range(3)] == [4, 3, 2]  # the newest client first
    assert queue.pop() is None and len(queue) == 0


def test_a_flight_is_cancelled_when_its_last_waiter_leaves() -> None:
    async def scenario() -> None:
        flights, started = Flights(), asyncio.Event()

        async def work() -> str:
            started.set()
            await asyncio.sleep(60)
            return "done"

        flight = flights.launch(["k"], work())
        waiters = [asyncio.create_task(flights.wait(flight)) for _ in range(2)]
        await started.wait()
        waiters[0].cancel()
        await asyncio.sleep(0.05)
        assert not flight.task.cancelled()  # one waiter is left
        waiters[1].cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
        await asyncio.sleep(0.05)
        assert flight.task.cancelled() and flights.find("k") is None

    asyncio.run(scenario())


# -- real worker processes ---------------------------------------------------------------------


def _unit(calls, arch: str = ARCH) -> ProxyUnit:
    return ProxyUnit(ArchRef("nb201", arch), tuple(calls))


def with_plane(scenario, workers: int = 1, **kw) -> None:
    """Run `await scenario(plane)` on a started plane of real local workers, then close it."""
    async def run() -> None:
        plane = ComputePlane(LocalBackend(workers), **kw)
        plane.start()
        await plane.wait_ready()
        try:
            await scenario(plane)
        finally:
            await plane.close()

    asyncio.run(run())


@pytest.mark.slow
def test_workers_compute_what_the_engine_computes_and_export() -> None:
    proxies = ["synflow", "naswot", "zico", "snip"]
    calls = [(p, SettingsOverride(seed=3)) for p in proxies]
    space, arch = registry.parse_arch("nb201", ARCH, 0, 0)
    expected = {o.name: o.value for o in engine.compute_proxies(space, arch, calls)}

    async def scenario(plane: ComputePlane) -> None:
        got: list = []
        assert await plane.run(_unit(calls), Caller("a"), got.append) is None
        assert {o.name: o.value for o in got} == expected  # bit for bit
        exported = await plane.run(ExportUnit(ArchRef("nb201", ARCH), common_pb2.ONNX,
                                              common_pb2.FP32, 1), Caller("a"))
        assert exported.data[:2] and exported.quantization == "fp32"
        with pytest.raises(ServerError, match="nb201"):
            await plane.run(_unit(calls, "|bogus|"), Caller("a"))

    with_plane(scenario, 2)


@pytest.mark.slow
def test_cancelled_work_is_dropped_or_abandoned_and_the_worker_stays_usable() -> None:
    async def scenario(plane: ComputePlane) -> None:
        outcomes: list[tuple[str, str]] = []
        plane._on_unit = lambda kind, outcome, s: outcomes.append((kind, outcome))
        running = asyncio.create_task(plane.run(_unit(ENDLESS), Caller("a")))
        queued = asyncio.create_task(plane.run(_unit(ENDLESS), Caller("a")))
        await asyncio.sleep(1.0)
        assert plane.snapshot() == {"queued": 1, "running": 1, "slots": 1}
        queued.cancel()
        await asyncio.sleep(0.1)
        assert plane.snapshot()["queued"] == 0  # dropped without running
        stopped = time.monotonic()
        running.cancel()
        got: list = []
        await plane.run(_unit([("synflow", SettingsOverride(seed=0))]), Caller("b"),
                        got.append)
        # The slot came back within the abandon grace (a checkpoint, or a replaced worker).
        assert time.monotonic() - stopped < 15 and got[0].error is None
        assert outcomes == [("proxies", "cancelled"), ("proxies", "ok")]

    with_plane(scenario, 1)


@pytest.mark.slow
def test_time_cap_memory_cap_and_a_dead_worker_fail_only_their_unit() -> None:
    async def scenario(plane: ComputePlane) -> None:
        quick = _unit([("synflow", SettingsOverride(seed=0))])
        got: list = []
        with pytest.raises(DeadlineExceeded, match="max-compute-seconds"):
            await plane.run(_unit([("synflow", SettingsOverride(seed=0))] + list(ENDLESS)),
                            Caller("a"), got.append)
        assert [o.name for o in got] == ["synflow"]  # what finished before the cap is kept
        await plane.run(quick, Caller("a"))

        plane.max_seconds = 60.0
        backend = plane.backend
        backend.max_memory_bytes = 1  # any worker is over it: killed at the next poll
        backend._monitor = asyncio.create_task(backend._watch_memory())
        with pytest.raises(ResourceExhausted, match="over the cap"):
            await plane.run(_unit(ENDLESS), Caller("a"))
        backend._monitor.cancel()
        backend.max_memory_bytes = 0
        await plane.run(quick, Caller("a"))

        running = asyncio.create_task(plane.run(_unit(ENDLESS), Caller("a")))
        await asyncio.sleep(1.0)
        os.kill(backend._workers[0].pid, signal.SIGKILL)
        with pytest.raises(ServerError, match="signal 9"):
            await running
        await plane.run(quick, Caller("a"))

    with_plane(scenario, 1, max_seconds=2.0)


@pytest.mark.slow
def test_one_client_does_not_starve_another() -> None:
    async def scenario(plane: ComputePlane) -> None:
        order: list[str] = []

        def unit(seed: int) -> ProxyUnit:
            return _unit([("synflow", SettingsOverride(seed=seed))])

        async def one(caller: Caller, seed: int, name: str) -> None:
            await plane.run(unit(seed), caller)
            order.append(name)

        flood = [asyncio.create_task(one(Caller("a", "stream"), i, f"a{i}"))
                 for i in range(30)]
        await asyncio.sleep(0.5)
        done_before = len(order)
        await one(Caller("b"), 99, "b")
        # b's one unit ran right after the unit in progress when it came.
        assert order.index("b") <= done_before + 1, order
        await asyncio.gather(*flood)

    with_plane(scenario, 1)


@pytest.mark.slow
def test_a_full_queue_refuses_or_holds_back() -> None:
    async def scenario(plane: ComputePlane) -> None:
        work = [asyncio.create_task(plane.run(_unit(ENDLESS), Caller("a")))
                for _ in range(3)]  # one runs, two wait
        await asyncio.sleep(0.5)
        with pytest.raises(QueueFull):
            await plane.run(_unit(ENDLESS), Caller("b"))
        held = asyncio.create_task(plane.run(_unit(ENDLESS), Caller("b", "s", True)))
        await asyncio.sleep(0.3)
        assert not held.done()  # waiting for room, not refused
        work[2].cancel()
        await asyncio.sleep(0.3)
        assert plane.snapshot()["queued"] == 2  # the held unit took the free place
        for task in (*work, held):
            task.cancel()
        await asyncio.gather(*work, held, return_exceptions=True)

    with_plane(scenario, 1, capacity=2, per_client=2)


# -- devices ------------------------------------------------------------------------------------


def test_local_workers_are_one_per_core_or_per_gpu(monkeypatch) -> None:
    import torch

    from edgescore.server.compute.local import _worker_devices

    assert _worker_devices(3, "cpu", 1) == ["cpu"] * 3
    assert _worker_devices(0, "cpu", 4) == ["cpu"] * (os.cpu_count() or 1)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert _worker_devices(0, "cuda", 2) == ["cuda:0", "cuda:0", "cuda:1", "cuda:1"]
    assert _worker_devices(8, "cuda:1", 3) == ["cuda:1"] * 3  # one named GPU


def test_each_unit_runs_on_the_device_of_its_worker() -> None:
    class TwoGpus:
        """A backend whose slots are two GPUs; it records what each unit was given."""

        name, size, seen = "gpus", 2, []

        async def start(self) -> None: ...

        async def run(self, slot, unit, on_item):
            self.seen.append((slot, unit.device))
            await asyncio.sleep(0.05)

        def device_of(self, slot: int) -> str:
            return f"cuda:{slot}"

        async def close(self) -> None: ...

    async def scenario() -> None:
        backend = TwoGpus()
        plane = ComputePlane(backend)
        plane.start()
        await plane.wait_ready()
        await asyncio.gather(*(plane.run(_unit([("synflow", SettingsOverride())]), Caller("a"))
                               for _ in range(4)))
        await plane.close()
        assert sorted(backend.seen) == [(0, "cuda:0"), (0, "cuda:0"), (1, "cuda:1"),
                                        (1, "cuda:1")]

    asyncio.run(scenario())


def test_a_server_asked_for_cuda_without_one_says_so() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "edgescore.server", "--device", "cuda",
                           "--address", "127.0.0.1:0", "--metrics-port", "-1", "--db",
                           ":memory:"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "CUDA is not available" in done.stderr


def test_a_worker_whose_server_went_away_mid_unit_exits_quietly() -> None:
    from edgescore.server.compute import worker

    class GonePipe:  # the server side closed after handing out one unit
        def __init__(self) -> None:
            self.inbox = [("unit", 1, _unit([("params", SettingsOverride())]))]
            self.sent: list = []

        def send(self, message) -> None:
            if message[0] != "ready":
                raise BrokenPipeError(32, "Broken pipe")
            self.sent.append(message)

        def recv(self):
            if not self.inbox:
                raise EOFError
            return self.inbox.pop(0)

    class Abandon:
        value = 0

    pipe = GonePipe()
    worker.main(pipe, Abandon())  # returns instead of raising BrokenPipeError
    assert pipe.sent[0][0] == "ready" and not pipe.inbox
