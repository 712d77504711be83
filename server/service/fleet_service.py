"""FleetService: what the device fleet looks like right now, and what it has measured (the
store's count, across restarts; a class known only from the store is listed with no agents)."""

from __future__ import annotations

import asyncio
import logging
from typing import Optional

import grpc

from edgescore.server.fleet.fleet import Fleet
from edgescore.server.service.rpc import unary
from edgescore.server.store import Store
from edgescore.v1 import fleet_pb2, fleet_pb2_grpc

log = logging.getLogger(__name__)


class FleetServicer(fleet_pb2_grpc.FleetServiceServicer):
    def __init__(self, fleet: Fleet, store: Optional[Store] = None) -> None:
        self._fleet = fleet
        self._store = store

    def _stored_counts(self) -> Optional[dict[str, int]]:
        if self._store is None:
            return None
        try:
            return self._store.measurement_counts()
        except Exception:  # noqa: BLE001 - the live view must not depend on the database
            log.warning("could not count stored measurements", exc_info=True)
            return None

    @unary
    async def ListDevices(self, request: fleet_pb2.ListDevicesRequest,
                          context: grpc.aio.ServicerContext) -> fleet_pb2.ListDevicesResponse:
        response = fleet_pb2.ListDevicesResponse()
        stored = await asyncio.to_thread(self._stored_counts)
        rows = self._fleet.snapshot()
        live = {row["device_class"] for row in rows}
        rows += [{"device_class": c, "agents": [], "busy": 0, "queue_depth": 0, "done": 0}
                 for c in sorted(set(stored or ()) - live)]
        for row in rows:
            done = row["done"] if stored is None else stored.get(row["device_class"], 0)
            info = fleet_pb2.DeviceClassInfo(
                device_class=row["device_class"], agents_online=len(row["agents"]),
                agents_busy=row["busy"], queue_depth=row["queue_depth"],
                measurements_done=done)
            runtimes = {}
            for session, age in row["agents"]:
                caps = session.capabilities
                info.agents.append(fleet_pb2.AgentInfo(
                    agent_id=session.agent_id, hostname=caps.hostname,
                    busy=session.running is not None, connected_seconds=age,
                    runtimes=list(caps.runtimes), tags=dict(caps.tags)))
                for rt in caps.runtimes:
                    runtimes.setdefault((rt.name, rt.version), rt)
            info.runtimes.extend(runtimes.values())
            response.devices.append(info)
        return response
