"""The `edgescore` command: the client's commands, plus `serve`, `agent` and `eval` that hand
over to the other parts, each loaded only when its command runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edgescore import cli
from edgescore.client import cli as client_cli


def test_the_umbrella_adds_three_commands_to_the_clients() -> None:
    assert set(cli.cli.commands) == {*client_cli.cli.commands, "serve", "agent", "eval"}
    assert not {"serve", "agent", "eval"} & set(client_cli.cli.commands)


def test_serve_and_agent_hand_their_arguments_over(capsys: pytest.CaptureFixture) -> None:
    for command, usage in (("serve", "usage: edgescore-server"),
                           ("agent", "usage: edgescore-agent")):
        with pytest.raises(SystemExit) as done:
            cli.main([command, "--help"])
        assert done.value.code == 0 and usage in capsys.readouterr().out


def test_a_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture) -> None:
    def no_torch(name: str) -> None:
        raise ImportError("No module named 'torch'")

    monkeypatch.setattr(cli.importlib, "import_module", no_torch)
    assert cli.main(["serve"]) == 1
    assert "`edgescore serve` needs the server extra: pip install 'edgescore[server]'" in (
        capsys.readouterr().err)


def test_the_client_commands_load_no_server_agent_or_evaluation_code() -> None:
    code = ("import sys; from edgescore import cli; cli.main(['--help']); "
            "loaded = [m for m in sys.modules if m.startswith(('edgescore.server', "
            "'edgescore.device_agent', 'torch')) or m.startswith('edgescore.evaluation.') "
            "and m != 'edgescore.evaluation.cli']; assert not loaded, loaded")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
