"""The layered settings loader (edgescore.config) as the server and the agent use it: one rule set
for files, empty variables and non-finite numbers; each process's own environment prefix, the
unprefixed names of earlier releases read with a warning."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import fields

import pytest

from edgescore import config as layered
from edgescore.device_agent import config as agent_config
from edgescore.server import config as server_config

PROCESSES = [(server_config.load_config, server_config.ENV_PREFIX),
             (agent_config.load_config, agent_config.ENV_PREFIX)]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No EDGESCORE_* variable of the caller's shell, and every legacy name not yet warned about."""
    for name in list(os.environ):
        if name.startswith("EDGESCORE_"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(layered, "_warned", set())


def test_each_process_reads_its_own_prefix(monkeypatch):
    monkeypatch.setenv("EDGESCORE_SERVER_DEVICE", "cuda")
    monkeypatch.setenv("EDGESCORE_SERVER_METRICS_PORT", "9999")
    monkeypatch.setenv("EDGESCORE_AGENT_DEVICE", "raspi4")
    monkeypatch.setenv("EDGESCORE_AGENT_TOKEN", "fleet")
    monkeypatch.setenv("EDGESCORE_AGENT_METRICS_PORT", "9465")
    server = server_config.load_config([])
    agent = agent_config.load_config([])
    assert (server.device, server.metrics_port, server.fleet_token) == ("cuda", 9999, "")
    assert (agent.device, agent.token, agent.metrics_port) == ("raspi4", "fleet", 9465)


def test_legacy_name_is_read_with_one_warning(monkeypatch, caplog):
    monkeypatch.setenv("EDGESCORE_TOKEN", "old-fleet")
    monkeypatch.setenv("EDGESCORE_DEVICE", "cpu")
    with caplog.at_level(logging.WARNING, logger="edgescore.config"):
        assert agent_config.load_config([]).token == "old-fleet"
        assert agent_config.load_config([]).token == "old-fleet"
        assert server_config.load_config([]).device == "cpu"
    warnings = [r.getMessage() for r in caplog.records]
    assert len([w for w in warnings if w.startswith("EDGESCORE_TOKEN ")]) == 1
    assert any("set EDGESCORE_AGENT_TOKEN instead" in w for w in warnings)
    # The same legacy name read by both processes in one interpreter warns once: the first.
    assert len([w for w in warnings if w.startswith("EDGESCORE_DEVICE ")]) == 1


def test_new_name_wins_over_legacy_without_warning(monkeypatch, caplog):
    monkeypatch.setenv("EDGESCORE_LOG_FORMAT", "text")
    monkeypatch.setenv("EDGESCORE_SERVER_LOG_FORMAT", "json")
    monkeypatch.setenv("EDGESCORE_AGENT_LOG_FORMAT", "json")
    with caplog.at_level(logging.WARNING, logger="edgescore.config"):
        assert server_config.load_config([]).log_format == "json"
        assert agent_config.load_config([]).log_format == "json"
    assert not caplog.records


def test_flags_beat_environment_beats_file_beats_defaults(tmp_path, monkeypatch):
    for suffix, text in ((".toml", 'grace_seconds = 4\nmax_queued = 7\ndevice = "cuda"\n'),
                         (".json", json.dumps({"grace_seconds": 4, "max_queued": 7,
                                               "device": "cuda"}))):
        path = tmp_path / f"server{suffix}"
        path.write_text(text)
        monkeypatch.setenv("EDGESCORE_SERVER_MAX_QUEUED", "8")
        config = server_config.load_config(["--config", str(path), "--device", "cpu"])
        assert (config.grace_seconds, config.max_queued, config.device) == (4.0, 8, "cpu")
        assert config.stream_window == server_config.ServerConfig.stream_window


@pytest.mark.parametrize("load, prefix", PROCESSES)
def test_empty_variable_counts_as_unset(tmp_path, monkeypatch, load, prefix):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"heartbeat_interval": 2.5}))
    monkeypatch.setenv(prefix + "HEARTBEAT_INTERVAL", "")
    monkeypatch.setenv("EDGESCORE_HEARTBEAT_INTERVAL", "")
    assert load(["--config", str(path)]).heartbeat_interval == 2.5
    monkeypatch.setenv(prefix + "METRICS_PORT", "")
    assert load([]).metrics_port == (9464 if prefix == server_config.ENV_PREFIX else -1)


@pytest.mark.parametrize("load, prefix", PROCESSES)
def test_non_finite_and_unusable_values_are_usage_errors(tmp_path, monkeypatch, capsys, load,
                                                         prefix):
    for bad in ("inf", "nan", "-inf"):
        with pytest.raises(SystemExit):
            load([f"--heartbeat-interval={bad}"])
        assert "--heartbeat-interval: must be a finite number" in capsys.readouterr().err
    monkeypatch.setenv(prefix + "HEARTBEAT_INTERVAL", "Infinity")
    with pytest.raises(SystemExit):
        load([])
    assert f"{prefix}HEARTBEAT_INTERVAL: must be a finite number" in capsys.readouterr().err
    monkeypatch.delenv(prefix + "HEARTBEAT_INTERVAL")
    for text, needle in (('{"metrics_port": 1.5}', "whole number"),
                         ('{"metrics_port": true}', "expected an int"),
                         ('{"metrics_port": null}', "expected an int"),
                         ('{"heartbeat_interval": [1]}', "expected a float"),
                         ('{"no_such_setting": 1}', "unknown settings"),
                         ("[1, 2]", "must hold an object"),
                         ("{", "--config")):
        path = tmp_path / "settings.json"
        path.write_text(text)
        with pytest.raises(SystemExit):
            load(["--config", str(path)])
        assert needle in capsys.readouterr().err, text
    with pytest.raises(SystemExit):
        load(["--config", str(tmp_path / "missing.toml")])
    assert "--config" in capsys.readouterr().err


def test_legacy_names_never_collide_with_the_other_process():
    """An unprefixed name read by one process is never the new name of the other one."""
    server = {f.name for f in fields(server_config.ServerConfig)}
    agent = {f.name for f in fields(agent_config.AgentConfig)}
    legacy = {layered.env_name(layered.LEGACY_ENV_PREFIX, n) for n in server | agent}
    new = ({layered.env_name(server_config.ENV_PREFIX, n) for n in server}
           | {layered.env_name(agent_config.ENV_PREFIX, n) for n in agent})
    assert not legacy & new


def test_help_names_the_new_variables(capsys):
    for load, prefix in PROCESSES:
        with pytest.raises(SystemExit):
            load(["--help"])
        out = capsys.readouterr().out.replace("\n", " ")
        assert f"{prefix}LOG_FORMAT" in " ".join(out.split())
