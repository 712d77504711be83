"""The Ray compute backend (`--compute ray --ray-address ADDR`): the same units of work, run as Ray
tasks anywhere in a cluster.

A unit is one task of one CPU (or a share of one GPU). Ray keeps its worker processes between
tasks, so a worker's imports and calibration data stay warm, as in the local pool. The server's
own queue still decides what runs next (fairness, caps, cancellation); Ray places each task on a
node with room. Cancelling a unit kills the task's worker (`ray.cancel(force=True)`): a task gets
no cooperative stop here, and the outcomes it had produced are lost with it. Every node needs
`edgescore[server]` installed, in the same version as the server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Optional

from edgescore.server.compute import units
from edgescore.server.compute.units import Unit
from edgescore.server.errors import ResourceExhausted, ServerError

log = logging.getLogger(__name__)

_prepared = False


def _execute(unit: Unit) -> tuple[list, Any]:
    """Runs in a Ray worker process: the unit's outcomes, and its result."""
    global _prepared
    if not _prepared:
        units.prepare_process()
        _prepared = True
    items: list = []
    result = units.execute(unit, items.append, lambda: None)
    return items, result


class RayBackend:
    name = "ray"

    def __init__(self, address: str = "", workers: int = 0, device: str = "cpu",
                 per_gpu: int = 1) -> None:
        self.address = address  # "": a Ray of this process's own (or $RAY_ADDRESS's)
        self.workers, self.device, self.per_gpu = workers, device, max(1, per_gpu)
        self.size = 0
        self._task: Optional[Any] = None

    def device_of(self, slot: int) -> str:
        # Ray hands each GPU task its own device (CUDA_VISIBLE_DEVICES), seen as cuda:0.
        return "cuda" if self.device.startswith("cuda") else "cpu"

    async def start(self) -> None:
        import ray

        options: dict[str, Any] = ({"address": self.address} if self.address
                                   else {"include_dashboard": False})
        await asyncio.to_thread(ray.init, namespace="edgescore", log_to_driver=False,
                                ignore_reinit_error=True, **options)
        resources = await asyncio.to_thread(ray.cluster_resources)
        if self.device.startswith("cuda"):
            gpus = int(resources.get("GPU", 0))
            if gpus < 1:
                raise RuntimeError(f"--device {self.device}, but the Ray cluster has no GPU")
            self.size = self.workers or gpus * self.per_gpu
            options = {"num_gpus": 1 / self.per_gpu, "num_cpus": 1}
        else:
            self.size = self.workers or max(1, int(resources.get("CPU", 1)))
            options = {"num_cpus": 1}
        self._task = ray.remote(max_retries=0, **options)(_execute)
        log.info("Ray cluster at %s: %s; %d unit(s) at once", self.address or "(embedded)",
                 {k: v for k, v in resources.items() if k in ("CPU", "GPU", "memory")},
                 self.size)

    async def run(self, slot: int, unit: Unit, on_item: Callable[[Any], None]) -> Any:
        import ray
        from ray import exceptions

        assert self._task is not None
        ref = self._task.remote(unit)
        try:
            items, result = await ref
        except asyncio.CancelledError:
            ray.cancel(ref, force=True)
            raise
        except exceptions.RayTaskError as exc:
            if isinstance(exc.cause, ServerError):
                raise exc.cause from None
            log.error("Ray task failed", exc_info=exc)
            raise ServerError(f"computation failed ({type(exc.cause).__name__})") from None
        except exceptions.OutOfMemoryError as exc:
            raise ResourceExhausted(f"the Ray node ran out of memory: {exc}") from None
        except exceptions.RayError as exc:  # a worker or node died
            raise ServerError(f"the Ray worker failed ({type(exc).__name__})") from None
        for item in items:
            on_item(item)
        return result

    async def close(self) -> None:
        import ray

        if ray.is_initialized():
            await asyncio.to_thread(ray.shutdown)
