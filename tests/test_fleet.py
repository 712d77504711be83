"""The fleet's scheduling rules, in process: one job per agent, re-queue on loss, idempotence."""

from __future__ import annotations

import pytest

from edgescore.server.fleet.fleet import Fleet
from edgescore.v1 import agent_pb2, common_pb2


@pytest.fixture
def fleet():
    f = Fleet(heartbeat_interval=60, missed_heartbeats=3, max_attempts=2)
    yield f
    f.close()


def caps(device_class: str = "pi4") -> agent_pb2.Capabilities:
    return agent_pb2.Capabilities(device_class=device_class, hostname="h")


def job() -> agent_pb2.Job:
    return agent_pb2.Job(artifact=agent_pb2.Artifact(sha256="0" * 64))


def result(job_id: str) -> agent_pb2.AgentMessage:
    return agent_pb2.AgentMessage(result=agent_pb2.JobResult(
        job_id=job_id, stats=common_pb2.LatencyStats(n=1, median_ms=1.0)))


def test_one_job_at_a_time_fifo(fleet: Fleet) -> None:
    agent = fleet.register(caps())
    first, second = fleet.submit("pi4", job()), fleet.submit("pi4", job())
    assert agent.outbox.get_nowait().job.job_id == first.job.job_id
    assert agent.outbox.empty()  # the second waits for the first to finish
    fleet.complete(agent, result(first.job.job_id))
    assert first.future.result(timeout=1).ok
    assert agent.outbox.get_nowait().job.job_id == second.job.job_id
    assert fleet.snapshot()[0]["done"] == 1


def test_higher_priority_first_fifo_among_equals(fleet: Fleet) -> None:
    queued = [fleet.submit("pi4", job(), priority) for priority in (0, 5, 0, 5, -1, 9)]
    agent = fleet.register(caps())
    order = []
    for _ in queued:
        sent = agent.outbox.get_nowait().job.job_id
        order.append(next(i for i, p in enumerate(queued) if p.job.job_id == sent))
        fleet.complete(agent, result(sent))
    assert order == [5, 1, 3, 0, 2, 4]


def test_raised_priority_moves_a_queued_job_behind_its_new_equals(fleet: Fleet) -> None:
    queued = [fleet.submit("pi4", job(), priority) for priority in (5, 0, 5, 0)]
    fleet.raise_priority(queued[3], 5)   # joins the 5s, behind those already there
    fleet.raise_priority(queued[0], 1)   # lowering never happens
    agent = fleet.register(caps())
    order = []
    for _ in queued:
        sent = agent.outbox.get_nowait().job.job_id
        order.append(next(i for i, p in enumerate(queued) if p.job.job_id == sent))
        fleet.complete(agent, result(sent))
    assert order == [0, 2, 3, 1]


def test_dispatch_and_requeue_are_reported(fleet: Fleet) -> None:
    events = []
    fleet.on_dispatch = lambda p, agent_id: events.append(("run", p.job.job_id, agent_id))
    fleet.on_requeue = lambda p, reason: events.append(("requeue", p.job.job_id, reason))
    a = fleet.register(caps(), "a")
    pending = fleet.submit("pi4", job())
    fleet.register(caps(), "b")
    fleet.unregister(a, "killed")
    jid = pending.job.job_id
    assert events == [("run", jid, "a"), ("requeue", jid, "killed"), ("run", jid, "b")]


def test_lost_agent_job_moves_to_another_and_late_answer_is_dropped(fleet: Fleet) -> None:
    a = fleet.register(caps())
    pending = fleet.submit("pi4", job())
    assert a.outbox.get_nowait().job.job_id == pending.job.job_id
    b = fleet.register(caps())
    fleet.unregister(a, "killed")
    assert b.outbox.get_nowait().job.job_id == pending.job.job_id
    fleet.complete(a, result(pending.job.job_id))  # the lost agent's late answer: dropped
    assert not pending.future.done()
    fleet.complete(b, result(pending.job.job_id))
    assert pending.future.result(timeout=1).agent_id == b.agent_id
    fleet.complete(b, result(pending.job.job_id))  # a duplicate: dropped, no error
    assert fleet.snapshot()[0]["done"] == 1


def test_retry_cap_turns_into_agent_lost(fleet: Fleet) -> None:
    pending = fleet.submit("pi4", job())
    for _ in range(2):
        agent = fleet.register(caps())
        fleet.unregister(agent, "crashed")
    outcome = pending.future.result(timeout=1)
    assert not outcome.ok and outcome.failure_kind == common_pb2.AGENT_LOST


def test_unknown_class_and_cancel(fleet: Fleet) -> None:
    assert not fleet.is_known("jetson")
    pending = fleet.submit("jetson", job())
    fleet.cancel(pending)
    assert pending.future.result(timeout=1).failure_kind == common_pb2.TIMEOUT
    assert fleet.snapshot() == []  # submitting does not make a class known


def test_replay_runtimes_answer_by_architecture(fleet: Fleet) -> None:
    """A class times artifacts only while agents are online and none replays a table."""
    from edgescore.v1 import fleet_pb2

    assert not fleet.times_artifacts("pi4")  # nobody online to say
    board = fleet.register(agent_pb2.Capabilities(device_class="pi4", runtimes=[
        fleet_pb2.RuntimeInfo(name="onnxruntime", formats=["onnx"])]))
    assert fleet.times_artifacts("pi4")
    timed = fleet.submit("pi4", job())
    fleet.complete(board, result(timed.job.job_id))
    assert not timed.future.result(timeout=1).by_architecture

    replay = fleet.register(agent_pb2.Capabilities(device_class="pi4", runtimes=[
        fleet_pb2.RuntimeInfo(name="table", formats=["onnx"], answers_by_architecture=True)]))
    assert not fleet.times_artifacts("pi4")
    fleet.unregister(board)
    looked_up = fleet.submit("pi4", job())
    message = result(replay.outbox.get_nowait().job.job_id)
    message.result.runtime = "table"
    fleet.complete(replay, message)
    assert looked_up.future.result(timeout=1).by_architecture
