"""The embedded compute backend: a pool of worker processes on this machine.

Workers are forked from a forkserver that has imported torch and the proxies once, so a worker
killed for its memory, its time cap or a stuck cancellation is replaced in a fraction of a second.
Each worker runs one unit at a time on one torch thread (`units.TORCH_THREADS`); on a GPU box a
worker is bound to one GPU (`cuda:i`), and several workers may share a GPU (`per_gpu`).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from typing import Any, Optional

from edgescore.server.compute.units import Unit
from edgescore.server.errors import ResourceExhausted, ServerError

log = logging.getLogger(__name__)

# A cancelled unit stops at its next checkpoint; one that has not within this long is killed.
ABANDON_GRACE_S = 2.0
_MEMORY_POLL_S = 0.25


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _context() -> multiprocessing.context.BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["edgescore.server.compute.worker"])
        return ctx
    return multiprocessing.get_context("spawn")


class _Died(Exception):
    pass


def _exit_reason(code: Optional[int]) -> str:
    if code is not None and code < 0:
        hint = " (the kernel's out-of-memory killer, or a kill)" if code == -9 else ""
        return f"killed by signal {-code}{hint}"
    return f"exit code {code}"


class LocalWorker:
    """One worker process, replaced whenever it dies or is killed."""

    def __init__(self, index: int, ctx: Any, log_level: str,
                 on_restart: Callable[[str], None]) -> None:
        self.index, self._ctx, self._log_level = index, ctx, log_level
        self._on_restart = on_restart
        self._process: Any = None
        self._conn: Any = None
        self._abandon = ctx.Value("q", 0, lock=False)
        self._messages: Optional[asyncio.Queue] = None
        self._seq = 0
        self._kill_reason = ""
        self.busy = False
        self.pid = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._messages = asyncio.Queue()
        parent, child = self._ctx.Pipe()
        from edgescore.server.compute import worker

        process = self._ctx.Process(target=worker.main, args=(child, self._abandon,
                                                               self._log_level),
                                    name=f"edgescore-compute-{self.index}", daemon=True)
        await asyncio.to_thread(process.start)
        child.close()
        self._process, self._conn, self._kill_reason = process, parent, ""
        messages = self._messages
        threading.Thread(target=self._pump, args=(parent, messages, loop),
                         name=f"compute-{self.index}-reader", daemon=True).start()
        kind, *rest = await messages.get()
        if kind != "ready":
            raise RuntimeError(f"compute worker {self.index} did not start ({kind} {rest})")
        self.pid = rest[0]

    @staticmethod
    def _pump(conn: Any, messages: asyncio.Queue, loop: asyncio.AbstractEventLoop) -> None:
        """Blocking reads on a thread of its own; every message goes to the event loop."""
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                message = ("died",)
            try:
                loop.call_soon_threadsafe(messages.put_nowait, message)
            except RuntimeError:
                return  # the loop is closed: the server is gone
            if message[0] == "died":
                return

    def rss_bytes(self) -> int:
        return _rss_bytes(self.pid) if self.pid else 0

    def kill(self, reason: str) -> None:
        if self._process is not None and self._process.is_alive():
            self._kill_reason = reason
            self._process.kill()

    async def _replace(self, reason: str) -> None:
        self.kill(reason)
        if self._process is not None:
            await asyncio.to_thread(self._process.join, 5)
        self._conn.close()
        self._on_restart(reason)
        log.info("compute worker %d (pid %d) replaced: %s", self.index, self.pid, reason)
        await self.start()

    async def run(self, unit: Unit, on_item: Callable[[Any], None]) -> Any:
        self._seq += 1
        uid, messages = self._seq, self._messages
        assert messages is not None
        self.busy = True
        try:
            await asyncio.to_thread(self._conn.send, ("run", uid, unit))
            while True:
                kind, *rest = await messages.get()
                if kind == "died":
                    raise _Died()
                if rest[0] != uid:
                    continue  # a late message of an abandoned unit
                if kind == "item":
                    on_item(rest[1])
                elif kind == "done":
                    return rest[1]
                elif kind == "error":
                    raise rest[1]
        except (_Died, BrokenPipeError, OSError) as exc:
            await asyncio.to_thread(self._process.join, 5)
            reason = self._kill_reason or _exit_reason(self._process.exitcode)
            await self._replace(reason)
            if reason.startswith("memory"):
                raise ResourceExhausted(f"the computation was stopped: {reason}") from None
            raise ServerError(f"the compute worker died ({reason})") from exc
        except asyncio.CancelledError:
            await self._stop_unit(uid)
            raise
        finally:
            self.busy = False

    async def _stop_unit(self, uid: int) -> None:
        """Abandon unit `uid`: at its next checkpoint, or by replacing the process."""
        self._abandon.value = uid
        messages = self._messages
        assert messages is not None
        deadline = asyncio.get_running_loop().time() + ABANDON_GRACE_S
        try:
            while True:
                left = deadline - asyncio.get_running_loop().time()
                kind, *rest = await asyncio.wait_for(messages.get(), max(left, 0.0))
                if kind == "died":
                    break
                if rest[0] == uid and kind in ("abandoned", "done", "error"):
                    return  # stopped cooperatively: the worker stays warm
        except asyncio.TimeoutError:
            pass
        await self._replace("abandoned work did not stop in time"
                            if not self._kill_reason else self._kill_reason)

    async def close(self) -> None:
        if self._process is None:
            return
        try:
            self._conn.send(None)
        except (OSError, ValueError):
            pass
        await asyncio.to_thread(self._process.join, 2)
        self.kill("server shutting down")
        self._conn.close()


class LocalBackend:
    """`size` worker processes; `device` "cpu", or "cuda" (one worker per GPU times `per_gpu`)."""

    name = "local"

    def __init__(self, workers: int = 0, device: str = "cpu", per_gpu: int = 1,
                 max_memory_bytes: int = 0, log_level: str = "INFO",
                 on_restart: Callable[[str], None] = lambda reason: None) -> None:
        self.devices = _worker_devices(workers, device, per_gpu)
        self.size = len(self.devices)
        self.max_memory_bytes = max_memory_bytes
        ctx = _context()
        self._workers = [LocalWorker(i, ctx, log_level, on_restart) for i in range(self.size)]
        self._monitor: Optional[asyncio.Task] = None

    def device_of(self, slot: int) -> str:
        return self.devices[slot]

    async def start(self) -> None:
        await asyncio.gather(*(w.start() for w in self._workers))
        if self.max_memory_bytes > 0:
            self._monitor = asyncio.create_task(self._watch_memory())

    async def run(self, slot: int, unit: Unit, on_item: Callable[[Any], None]) -> Any:
        return await self._workers[slot].run(unit, on_item)

    async def _watch_memory(self) -> None:
        cap = self.max_memory_bytes
        while True:
            await asyncio.sleep(_MEMORY_POLL_S)
            for w in self._workers:
                rss = w.rss_bytes() if w.busy else 0
                if rss > cap:
                    w.kill(f"memory: the worker reached {rss / 2**20:,.0f} MiB, over the cap of "
                           f"{cap / 2**20:,.0f} MiB per worker (--worker-max-memory-mb)")

    async def close(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
        await asyncio.gather(*(w.close() for w in self._workers), return_exceptions=True)


def _worker_devices(workers: int, device: str, per_gpu: int) -> list[str]:
    if device.startswith("cuda"):
        import torch

        if device != "cuda":  # one named GPU, e.g. cuda:1
            return [device] * max(1, per_gpu)
        gpus = torch.cuda.device_count()
        return [f"cuda:{i}" for i in range(gpus) for _ in range(max(1, per_gpu))]
    return ["cpu"] * max(1, workers or os.cpu_count() or 1)
