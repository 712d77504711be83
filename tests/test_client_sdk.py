"""The SDK against a real server: bounded streaming, restarts survived, one exception type."""

from __future__ import annotations

import asyncio
import threading
import time

import grpc
import pytest
from conftest import QUICK_MEASUREMENT

from edgescore.client import AsyncClient, Client, EdgescoreError, RetryPolicy, to_dataframe
from edgescore.client.launcher import LocalStack
from edgescore.grammar.nats_sss import NatsSssGrammar
from edgescore.grammar.nb201 import Nb201Grammar
from edgescore.v1 import common_pb2

pytestmark = pytest.mark.slow

# Cells whose 1->2 edge is not `none`: no isomorphic twin, so the server's canonical form is the
# string itself and results can be matched to inputs by it.
ALL_NB201 = sorted(a for a in {Nb201Grammar().sample(__import__("random").Random(i))
                               for i in range(4000)} if "|none~1|+" not in a.split("+", 1)[1])


def distinct_archs(n: int) -> list[str]:
    assert len(ALL_NB201) >= n
    return ALL_NB201[:n]


class CountingClient(Client):
    """Records how many `score` calls run at once (the client's own scheduling, not a mock)."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.now = self.peak = 0
        self._lock = threading.Lock()

    def score(self, *args, **kw):
        with self._lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        try:
            return super().score(*args, **kw)
        finally:
            with self._lock:
                self.now -= 1


@pytest.fixture(scope="module")
def stack():
    with LocalStack(agents={}) as s:
        yield s


def test_score_many_streams_1000_cheap_requests_with_bounded_concurrency(stack) -> None:
    # 1,000 requests over 100 cells, as a search loop that revisits archs sends them: the first
    # of each computes, the others are answered from the store.
    import random

    archs = distinct_archs(100) * 10
    random.Random(0).shuffle(archs)
    with CountingClient(stack.target, timeout=600) as client:
        seen = {}
        for item in client.score_many(iter(archs), ["params"], max_in_flight=12):
            assert item.ok, item.error
            assert item.index not in seen
            seen[item.index] = item.result
    assert sorted(seen) == list(range(1000))
    assert all(seen[i].canonical_arch == archs[i] for i in seen)
    values = {}
    for i, result in seen.items():  # every repeat has its first computation's value
        assert values.setdefault(archs[i], result.proxies["params"].value) == \
            result.proxies["params"].value
    assert {r.proxies["params"].provenance for r in seen.values()} == {"COMPUTED", "CACHED"}
    assert 1 < client.peak <= 12
    frame = to_dataframe(seen[i] for i in range(5))
    assert list(frame["params"]) == [seen[i].proxies["params"].value for i in range(5)]


def test_async_client_score_many_and_lists(stack) -> None:
    archs = distinct_archs(60)

    async def run():
        async with AsyncClient(stack.target) as client:
            items = [item async for item in client.score_many(archs, ["params"],
                                                              max_in_flight=6)]
            spaces = {s.name for s in await client.spaces()}
            proxies = {p.name for p in await client.proxies()}
            with pytest.raises(EdgescoreError) as err:
                await client.score(archs[0], ["no_such_proxy"])
            return items, spaces, proxies, err.value.code

    items, spaces, proxies, code = asyncio.run(run())
    assert sorted(i.index for i in items) == list(range(60)) and all(i.ok for i in items)
    assert {i.result.canonical_arch for i in items} >= {archs[5]}
    assert {"nb201", "nb101", "macro", "vit", "onnx"} <= spaces and "params" in proxies
    assert code == grpc.StatusCode.NOT_FOUND


def test_a_server_restart_during_score_many_loses_and_duplicates_nothing() -> None:
    archs = distinct_archs(1000)[-120:]
    patient = RetryPolicy(max_attempts=60, initial_backoff=0.2, max_backoff=1.0)
    with LocalStack(agents={}) as stack, Client(stack.target, retry=patient) as client:
        port, results, restarted = stack.port, {}, False
        for item in client.score_many(archs, ["params"], max_in_flight=8):
            assert item.ok, item.error
            assert item.index not in results, "a result came back twice"
            results[item.index] = item.result
            if len(results) == 40 and not restarted:
                stack.stop_server()   # SIGTERM: drains, then later requests find no server
                time.sleep(1.0)
                stack.start_server(port)
                restarted = True
        assert restarted and sorted(results) == list(range(120))
        assert all(results[i].canonical_arch == archs[i] for i in results)
        # Results computed before the restart are in the store: the new process serves them.
        again = client.score(archs[0], ["params"])
        assert again.proxies["params"].provenance == "CACHED"


@pytest.mark.parametrize("case", ["invalid_argument", "not_found", "resource_exhausted",
                                  "unauthenticated", "deadline_exceeded", "unavailable"])
def test_every_server_status_is_an_edgescore_error_with_its_code(case: str) -> None:
    """Every code a v1 RPC ends with (per-item failures are ItemStatus, not errors)."""
    token = "s3cret"
    args = ["--max-params", "1000000"]
    code = getattr(grpc.StatusCode, case.upper())
    if case == "unavailable":
        with pytest.raises(EdgescoreError) as err:
            Client(f"127.0.0.1:{_free_port()}", retry=RetryPolicy(max_attempts=2),
                   timeout=5).proxies()
        assert err.value.code == code
        return
    with LocalStack(agents={}, server_args=args, api_token=token) as stack, \
            Client(stack.target, token=token, timeout=60) as client:
        with pytest.raises(EdgescoreError) as err:
            if case == "invalid_argument":
                client.score("|conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|", ["params"])
            elif case == "not_found":
                client.score(ALL_NB201[0], ["params"], ["no-such-board"])
            elif case == "resource_exhausted":
                client.score(MOBILENET_V2, ["params"], space="macro")
            elif case == "unauthenticated":
                with Client(stack.target, token="wrong") as other:
                    other.devices()
            elif case == "deadline_exceeded":
                with Client(stack.target, token=token, timeout=0.3) as hurried:
                    hurried.score(ALL_NB201[1], ["ntk_cond"], proxy_settings={"repeats": 5})
    assert err.value.code == code, err.value
    assert err.value.details


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


MOBILENET_V2 = {"stem_width": 32, "head_width": 1280, "stages": [
    {"kernel": 3, "expansion": e, "width": c, "depth": n, "stride": s}
    for e, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1))]}


def test_specs_of_every_space_go_through_the_sdk(stack) -> None:
    import random

    with Client(stack.target) as client:
        nats = client.score(NatsSssGrammar().sample(random.Random(0)), ["params"],
                            space="nats_sss")
        nb101 = client.score({"adjacency": [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1],
                                            [0, 0, 0, 0]],
                              "ops": ["input", "conv3x3-bn-relu", "maxpool3x3", "output"]},
                             ["params"], space="nb101")
        macro = client.score(MOBILENET_V2, ["params"], space="macro")
        vit = client.score('{"embed_dim": 64, "depth": 2, "num_heads": [1, 2], '
                           '"patch_size": 8}', ["params"], space="vit", input_resolution=32,
                           num_classes=10)
        # HELP's first FBNet arch as HW-NAS-Bench's op ids; answered in its arch_str form.
        fbnet = client.score([5, 3, 5, 5, 0, 4, 7, 5, 5, 2, 0, 2, 4, 5, 1, 3, 7, 2, 6, 0, 4, 0],
                             ["params"], space="fbnet")
    assert nats.space == "nats_sss" and nats.proxies["params"].ok
    assert fbnet.canonical_arch.startswith("k5_e1_g2 k3_e6 ")
    assert fbnet.proxies["params"].value == 1_695_572  # HW-NAS-Bench's FBNet_Infer, CIFAR-100
    assert len(nb101.canonical_arch) == 32  # NB-101's md5 graph hash
    assert macro.proxies["params"].value == 3_504_872  # torchvision's mobilenet_v2
    assert vit.proxies["params"].ok
    with pytest.raises(EdgescoreError) as err:
        with Client(stack.target) as client:
            client.score({"stem_width": 32}, ["params"], space="macro")
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "arch.macro" in err.value.details


def test_measurement_goes_through_score_many_too() -> None:
    with LocalStack(agents={"local-cpu": 1}) as stack:
        stack.wait_for_agents({"local-cpu": 1})
        with stack.client(timeout=300) as client:
            items = list(client.score_many(distinct_archs(4), ["params"], ["local-cpu"],
                                           max_in_flight=2, measurement=QUICK_MEASUREMENT,
                                           objective=common_pb2.Objective(
                                               constraint=common_pb2.ConstraintObjective(
                                                   proxy="params",
                                                   latency_budget_ms={"local-cpu": 1e6}))))
    assert len(items) == 4
    for item in items:
        assert item.result.latencies["local-cpu"].ok
        assert item.result.objective.feasible
