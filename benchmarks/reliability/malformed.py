"""Malformed input over every RPC: hypothesis draws each RPC's request messages from the contract
(edge values in every field, see messages.py), plus undecodable bytes sent as the request. Every
call must end with a precise status: call-level INTERNAL / UNKNOWN, or a crash, is a finding."""

from __future__ import annotations

import random
from typing import Any, Callable

import grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.reliability import runner
from benchmarks.reliability.messages import message_strategy
from edgescore.client.launcher import LocalStack
from edgescore.v1 import agent_pb2, agent_pb2_grpc, fleet_pb2, scoring_pb2

OWN_STACK = False
SIZES = {"short": 12, "full": 300}  # examples per RPC
CALL_SECONDS = 30.0


def _unary(method: str, message: Any, stubs: runner.Stubs) -> tuple[Any, Callable[[Any], Any]]:
    service = stubs.fleet if method == "ListDevices" else stubs.scoring
    stub = getattr(service, method)
    return message, lambda m: stub(m, timeout=CALL_SECONDS, metadata=runner.AUTH)


def _drain(responses: Any) -> int:
    return sum(1 for _ in responses)


def rpcs(chan: grpc.Channel) -> dict[str, tuple[Any, Callable[[Any], Any]]]:
    """Each RPC: the strategy of what it is sent, and how one drawn value is sent."""
    stubs, agents = runner.Stubs.of(chan), agent_pb2_grpc.AgentServiceStub(chan)
    fleet_auth = runner.token_metadata(runner.FLEET_TOKEN)
    table = {name: _unary(name, message_strategy(cls.DESCRIPTOR), stubs) for name, cls in (
        ("Score", scoring_pb2.ScoreRequest), ("ListProxies", scoring_pb2.ListProxiesRequest),
        ("ListSearchSpaces", scoring_pb2.ListSearchSpacesRequest),
        ("RegisterDataset", scoring_pb2.RegisterDatasetRequest),
        ("ListDevices", fleet_pb2.ListDevicesRequest))}
    table["ScoreStream"] = (
        st.lists(message_strategy(scoring_pb2.ScoreRequest.DESCRIPTOR), max_size=3),
        lambda ms: _drain(stubs.scoring.ScoreStream(iter(ms), timeout=CALL_SECONDS,
                                                    metadata=runner.AUTH)))
    table["Connect"] = (
        st.lists(message_strategy(agent_pb2.AgentMessage.DESCRIPTOR), max_size=3),
        lambda ms: _drain(agents.Connect(iter(ms), timeout=5, metadata=fleet_auth)))
    return table


def raw_bytes_calls(chan: grpc.Channel, n: int, tally: runner.Tally) -> None:
    """Bytes that are no valid message of the method's request type (or happen to be one)."""
    rng = random.Random(7)
    methods = ["/edgescore.v1.ScoringService/Score", "/edgescore.v1.ScoringService/ListProxies",
               "/edgescore.v1.ScoringService/RegisterDataset",
               "/edgescore.v1.FleetService/ListDevices"]
    for method in methods:
        call = chan.unary_unary(method, request_serializer=None, response_deserializer=None)
        for _ in range(n):
            payload = rng.randbytes(rng.choice([1, 7, 64, 4096]))
            label = f"{method.rsplit('/', 1)[1]} (undecodable bytes)"
            runner.timed(tally, label, lambda p=payload, c=call: c(
                p, timeout=CALL_SECONDS, metadata=runner.AUTH))


def _fuzz(name: str, strategy: st.SearchStrategy, send: Callable[[Any], Any], examples: int,
          tally: runner.Tally) -> None:
    @settings(max_examples=examples, database=None, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def one(message: Any) -> None:
        reply = runner.timed(tally, name, lambda: send(message))
        if isinstance(reply, scoring_pb2.ScoreResult):
            tally.result_items(reply)

    one()


def run(size: str, s: LocalStack) -> runner.Result:
    examples = SIZES[size]
    result, tally, started = runner.begin(
        "malformed", f"{examples} drawn requests per RPC + raw bytes", s)
    with runner.channel(s) as chan:
        for name, (strategy, send) in rpcs(chan).items():
            _fuzz(name, strategy, send, examples, tally)
        raw_bytes_calls(chan, max(3, examples // 4), tally)
    return runner.finish(result, s, tally, started)
