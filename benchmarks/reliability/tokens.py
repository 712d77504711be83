"""The token matrix: every RPC called with no token, a wrong one, the API token and the fleet
token. The scoring and fleet services and reflection answer only the API token, the agent service
only the fleet token, health everyone (by design: probes, see server/service/auth.py). Any other
outcome is a finding: a call let through without its token, or refused with its token."""

from __future__ import annotations

from typing import Any, Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from benchmarks.reliability import runner
from edgescore.client.launcher import LocalStack
from edgescore.v1 import agent_pb2, agent_pb2_grpc, fleet_pb2, scoring_pb2

OWN_STACK = False
TOKENS = {"none": "", "wrong": "not-the-token", "api": runner.API_TOKEN,
          "fleet": runner.FLEET_TOKEN}
OPEN = "open"  # answers every caller


def rpcs(chan: grpc.Channel, arch: str) -> dict[str, tuple[str, Callable[[Any], Any]]]:
    """RPC name: (the token it demands, a call presenting the given metadata)."""
    stubs, agents = runner.Stubs.of(chan), agent_pb2_grpc.AgentServiceStub(chan)
    health = health_pb2_grpc.HealthStub(chan)
    reflection = reflection_pb2_grpc.ServerReflectionStub(chan)
    score = runner.score_request(arch, ["params"])
    register = agent_pb2.AgentMessage(register=agent_pb2.Register(
        capabilities=agent_pb2.Capabilities(device_class="token-matrix")))
    t = 60  # the first Score of a fresh server waits for its compute workers
    return {
        "Score": ("api", lambda md: stubs.scoring.Score(score, timeout=t, metadata=md)),
        "ScoreStream": ("api", lambda md: list(stubs.scoring.ScoreStream(
            iter([score]), timeout=t, metadata=md))),
        "ListProxies": ("api", lambda md: stubs.scoring.ListProxies(
            scoring_pb2.ListProxiesRequest(), timeout=t, metadata=md)),
        "ListSearchSpaces": ("api", lambda md: stubs.scoring.ListSearchSpaces(
            scoring_pb2.ListSearchSpacesRequest(), timeout=t, metadata=md)),
        "RegisterDataset": ("api", lambda md: _invalid_is_through(stubs.scoring.RegisterDataset,
                                                                  md)),
        "ListDevices": ("api", lambda md: stubs.fleet.ListDevices(
            fleet_pb2.ListDevicesRequest(), timeout=t, metadata=md)),
        "Connect": ("fleet", lambda md: next(iter(agents.Connect(iter([register]), timeout=t,
                                                                 metadata=md)))),
        "Health": (OPEN, lambda md: health.Check(health_pb2.HealthCheckRequest(), timeout=t,
                                                 metadata=md)),
        "Reflection": ("api", lambda md: list(reflection.ServerReflectionInfo(iter(
            [reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=t,
            metadata=md))),
    }


def _invalid_is_through(method: Callable, md: Any) -> Any:
    """An empty dataset: INVALID_ARGUMENT means the call got past the token check."""
    try:
        return method(scoring_pb2.RegisterDatasetRequest(), timeout=10, metadata=md)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
            return None
        raise


def run(size: str, s: LocalStack) -> runner.Result:
    result, tally, started = runner.begin("tokens", "9 RPCs x 4 tokens", s)
    wrong: list[str] = []
    (arch,) = runner.replay_archs(1, seed=6)
    with runner.channel(s) as chan:
        for name, (demands, call) in rpcs(chan, arch).items():
            for token_name, token in TOKENS.items():
                before = tally.codes["UNAUTHENTICATED"]
                metadata = runner.token_metadata(token)
                runner.timed(tally, f"{name} ({token_name} token)",
                             lambda c=call, md=metadata: c(md))
                refused = tally.codes["UNAUTHENTICATED"] > before
                if refused != (demands not in (OPEN, token_name)):
                    wrong.append(f"{name} with {token_name} token: "
                                 f"{'refused' if refused else 'let through'}")
    runner.finish(result, s, tally, started)
    if wrong:
        result.findings.append("token matrix: " + "; ".join(wrong))
    result.notes.append("health answers without a token (by design); reflection needs the API "
                        "token")
    return result
