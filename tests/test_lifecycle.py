"""Process lifecycle: tokens, server restarts with agents reconnecting, graceful SIGTERM."""

from __future__ import annotations

import subprocess

import pytest
from conftest import QUICK_MEASUREMENT

from edgescore.client import Client
from edgescore.client.launcher import LocalStack

pytestmark = pytest.mark.slow

ARCH = ("|nor_conv_1x1~0|+|nor_conv_1x1~0|skip_connect~1|"
        "+|nor_conv_1x1~0|skip_connect~1|nor_conv_1x1~2|")


def test_agent_token_is_required_and_checked() -> None:
    with LocalStack(agents={"board": 1}, token="s3cret") as stack:
        for bad in ("", "wrong"):
            # An empty token from the CLI means "none"; both must be refused.
            proc = stack.start_agent("intruder", token=bad)
            try:
                code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pytest.fail(f"agent with token {bad!r} was not refused")
            assert code != 0
            log = stack.read_log(f"agent-intruder-{len(stack.agents) - 1}.log")
            assert "UNAUTHENTICATED" in log or "token" in log.lower()
        with Client(stack.target) as client:
            classes = {d.device_class for d in client.devices()}
        assert classes == {"board"}


def test_agents_reconnect_after_server_restart_and_sigterm_is_graceful() -> None:
    with LocalStack(agents={"local-cpu": 1}) as stack:
        port = stack.port
        assert stack.stop_server() == 0  # SIGTERM → drained and exited cleanly
        stack.start_server(port=port)
        stack.wait_for_agents({"local-cpu": 1}, timeout=90)
        with Client(stack.target) as client:
            result = client.score(ARCH, ["params"], ["local-cpu"], measurement=QUICK_MEASUREMENT)
        assert result.latencies["local-cpu"].ok
        assert result.latencies["local-cpu"].provenance == "MEASURED"
