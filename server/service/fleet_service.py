"""FleetService: what the device fleet looks like right now."""

from __future__ import annotations

import grpc

from edgescore.server.fleet.fleet import Fleet
from edgescore.server.service.rpc import unary
from edgescore.v1 import fleet_pb2, fleet_pb2_grpc


class FleetServicer(fleet_pb2_grpc.FleetServiceServicer):
    def __init__(self, fleet: Fleet) -> None:
        self._fleet = fleet

    @unary
    def ListDevices(self, request: fleet_pb2.ListDevicesRequest,
                    context: grpc.ServicerContext) -> fleet_pb2.ListDevicesResponse:
        response = fleet_pb2.ListDevicesResponse()
        for row in self._fleet.snapshot():
            info = fleet_pb2.DeviceClassInfo(
                device_class=row["device_class"], agents_online=len(row["agents"]),
                agents_busy=row["busy"], queue_depth=row["queue_depth"],
                measurements_done=row["done"])
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
