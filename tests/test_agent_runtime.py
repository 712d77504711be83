"""Agent unit tests of LiteRT timing, the shared loop, cooldown / throttling, metrics, config."""

from __future__ import annotations

import hashlib
import json
import math
import sys
import types
import urllib.request

import numpy as np
import pytest
from tflite_models import fc_model

from edgescore.device_agent import config, cooldown, metrics, tflite_runner, timing, worker
from edgescore.v1 import agent_pb2, common_pb2

FAST = common_pb2.MeasurementSettings(warmup_runs=2, min_runs=20, min_seconds=0.01)


def tflite_job(data: bytes, settings: common_pb2.MeasurementSettings = FAST) -> agent_pb2.Job:
    art = agent_pb2.Artifact(sha256=hashlib.sha256(data).hexdigest(), data=data,
                             format=common_pb2.TFLITE, precision=common_pb2.INT8)
    return agent_pb2.Job(job_id="job-t", artifact=art, settings=settings)


# --- LiteRT runner ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "int8", "uint8"])
def test_measure_tflite_each_input_dtype(dtype):
    stats, info = tflite_runner.measure_tflite(fc_model(dtype), FAST)
    assert stats.n >= 20 and len(stats.samples_ms) == stats.n and stats.min_ms > 0
    assert stats.load_ms > 0 and stats.peak_rss_bytes > 0
    assert info["runtime"] == "ai-edge-litert" and info["runtime_version"]
    assert info["execution_provider"] == "XNNPACK"  # the default delegate really applied
    assert info["input_shape"] == [1, 16]


def test_quantized_random_input_uses_scale_and_zero_point():
    rng = np.random.default_rng(0)
    detail = {"dtype": np.uint8, "quantization": (0.05, 128)}
    x = tflite_runner._random_input(rng, detail, [1000])
    assert x.dtype == np.uint8 and 100 < x.mean() < 156 and x.min() < 110 < 150 < x.max()


def test_tflite_dynamic_batch_and_layout_permutation():
    settings = common_pb2.MeasurementSettings()
    settings.CopyFrom(FAST)
    settings.batch_size = 4
    _, info = tflite_runner.measure_tflite(fc_model(dynamic_batch=True), settings)
    assert info["input_shape"] == [4, 16]
    nhwc = {"shape": [1, 32, 32, 3], "shape_signature": [1, 32, 32, 3]}
    assert tflite_runner._resolve_shape(nhwc, [1, 3, 32, 32], 1) == [1, 32, 32, 3]
    assert tflite_runner._resolve_shape(nhwc, [4, 3, 32, 32], 1) == [4, 32, 32, 3]
    dyn = {"shape": [1, 3, 8, 8], "shape_signature": [-1, 3, 8, 8]}
    assert tflite_runner._resolve_shape(dyn, [2, 3, 8, 8], 1) == [2, 3, 8, 8]


def test_tflite_passes_threads_and_builtin_resolver(monkeypatch):
    seen = {}
    real = tflite_runner.load_interpreter_module()[0]

    class Spy(real.Interpreter):
        def __init__(self, **kwargs):
            seen.update(kwargs)
            super().__init__(**kwargs)

    fake = types.SimpleNamespace(Interpreter=Spy, OpResolverType=real.OpResolverType)
    monkeypatch.setattr(tflite_runner, "load_interpreter_module", lambda: (fake, "x", "1"))
    settings = common_pb2.MeasurementSettings(warmup_runs=1, min_runs=2, threads=2)
    tflite_runner.measure_tflite(fc_model(), settings)
    assert seen["num_threads"] == 2
    assert seen["experimental_op_resolver_type"] == real.OpResolverType.BUILTIN
    assert isinstance(seen["model_content"], bytes)  # from bytes, no file


def test_tflite_runtime_fallback(monkeypatch):
    fake = types.ModuleType("tflite_runtime.interpreter")
    pkg = types.ModuleType("tflite_runtime")
    pkg.interpreter = fake
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # import fails
    monkeypatch.setitem(sys.modules, "tflite_runtime", pkg)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", fake)
    module, name, _ = tflite_runner.load_interpreter_module()
    assert module is fake and name == "tflite-runtime"


def test_run_job_tflite_result():
    msg = worker.run_job(tflite_job(fc_model("int8")))
    assert msg.WhichOneof("msg") == "result", msg
    res = msg.result
    assert res.runtime == "ai-edge-litert" and res.execution_provider == "XNNPACK"
    assert res.settings.format == common_pb2.TFLITE and res.settings.precision == common_pb2.INT8
    assert list(res.settings.input_shape) == [1, 16] and res.stats.n >= 20
    assert res.HasField("env_before") and res.HasField("env_after")


def test_run_job_tflite_garbage_is_runtime_error():
    msg = worker.run_job(tflite_job(b"not a flatbuffer at all"))
    assert msg.failure.kind == common_pb2.RUNTIME_ERROR


# --- shared timing loop ----------------------------------------------------------------------


def test_time_runs_protocol_and_between_runs():
    calls, between = [], []
    eff = common_pb2.MeasurementSettings(warmup_runs=3, min_runs=5, min_seconds=0.0,
                                         max_seconds=10.0)
    samples = timing.time_runs(lambda: calls.append(1), eff, None, lambda: between.append(1))
    assert len(samples) == 5 and len(calls) == 8
    assert len(between) == 4  # between timed runs only, never inside one
    with pytest.raises(timing.MeasurementAborted):
        timing.time_runs(lambda: None, eff, lambda: True)


# --- cooldown and throttling -----------------------------------------------------------------


def test_cooldown_waits_until_below_and_echoes_readings():
    temps = iter([71.0, 66.5, 58.25])
    slept = []
    trace = common_pb2.ThermalTrace()
    cooldown.wait_for_cooldown(trace, 60.0, 100.0, 2.0, read_temp=lambda: next(temps),
                               sleep=slept.append)
    assert trace.cooldown_reached and trace.cooldown_target_celsius == 60.0
    assert list(trace.cooldown_temps_celsius) == [71.0, 66.5, 58.25] and slept == [2.0, 2.0]


def test_cooldown_gives_up_at_cap_or_without_sensor():
    trace = common_pb2.ThermalTrace()
    cooldown.wait_for_cooldown(trace, 40.0, 0.05, 0.01, read_temp=lambda: 80.0)
    assert not trace.cooldown_reached and trace.cooldown_waited_seconds >= 0.05
    assert len(trace.cooldown_temps_celsius) >= 2
    trace = common_pb2.ThermalTrace()
    cooldown.wait_for_cooldown(trace, 40.0, 100.0, read_temp=lambda: math.nan)
    assert not trace.cooldown_reached and len(trace.cooldown_temps_celsius) == 0


def test_run_job_with_cooldown_echoes_trace():
    settings = common_pb2.MeasurementSettings()
    settings.CopyFrom(FAST)
    settings.cooldown_below_celsius = 200.0  # any working sensor is below: no wait
    msg = worker.run_job(tflite_job(fc_model(), settings),
                         options=worker.WorkerOptions(cooldown_max_wait=0.1, cooldown_poll=0.05))
    trace = msg.result.thermal
    assert trace.cooldown_target_celsius == 200.0 and trace.cooldown_waited_seconds < 1.0
    assert msg.result.settings.cooldown_below_celsius == 200.0


def _policy(root, name: str, cur_khz: int, max_khz: int) -> None:
    d = root / name
    d.mkdir()
    (d / "scaling_cur_freq").write_text(f"{cur_khz}\n")
    (d / "cpuinfo_max_freq").write_text(f"{max_khz}\n")


def test_clock_sampler_flags_frequency_below_max(tmp_path):
    _policy(tmp_path, "policy0", 600_000, 1_800_000)   # idle little cores: ignored
    _policy(tmp_path, "policy4", 2_400_000, 2_400_000)  # the core running the model
    sampler = cooldown.ClockSampler(str(tmp_path / "policy*"), every=0.0)
    sampler()
    assert sampler.samples == 1 and not sampler.throttled()
    (tmp_path / "policy4" / "scaling_cur_freq").write_text("1500000\n")
    sampler()
    assert sampler.throttled() and sampler.min_mhz == 1500.0 and sampler.max_mhz == 2400.0
    trace = common_pb2.ThermalTrace()
    env = common_pb2.DeviceEnv(throttled="throttled=0x4")
    assert cooldown.finish_trace(trace, sampler, env, common_pb2.DeviceEnv())
    assert any("vcgencmd" in r for r in trace.throttle_reasons)
    assert any("cpufreq 1500 MHz" in r for r in trace.throttle_reasons)
    assert not cooldown.finish_trace(common_pb2.ThermalTrace(), cooldown.ClockSampler(""),
                                     common_pb2.DeviceEnv(), common_pb2.DeviceEnv())


# --- metrics ---------------------------------------------------------------------------------


def test_agent_metrics_endpoint():
    m = metrics.AgentMetrics()
    ok = agent_pb2.AgentMessage(result=agent_pb2.JobResult(
        job_id="a", throttled=True, env_after=common_pb2.DeviceEnv(cpu_temp_celsius=51.5)))
    m.observe_job(ok, 3.0)
    m.observe_job(agent_pb2.AgentMessage(failure=agent_pb2.JobFailure(
        job_id="b", kind=common_pb2.TIMEOUT)), 0.2)
    port = m.serve(0, "127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = r.read().decode()
    finally:
        m.close()
    lines = set(text.splitlines())
    assert 'edgescore_agent_jobs_total{outcome="ok"} 1.0' in lines
    assert 'edgescore_agent_jobs_total{outcome="timeout"} 1.0' in lines
    assert 'edgescore_agent_job_duration_seconds_bucket{le="0.5"} 1.0' in lines
    assert 'edgescore_agent_job_duration_seconds_bucket{le="5.0"} 2.0' in lines
    assert 'edgescore_agent_job_duration_seconds_bucket{le="+Inf"} 2.0' in lines
    assert "edgescore_agent_job_duration_seconds_sum 3.2" in lines
    assert "edgescore_agent_cpu_temperature_celsius 51.5" in lines
    assert "edgescore_agent_throttled_runs_total 1.0" in lines


# --- configuration ---------------------------------------------------------------------------


def test_config_precedence_flags_env_file(tmp_path, monkeypatch):
    for key in ("SERVER", "DEVICE_CLASS", "TOKEN", "TAGS", "METRICS_PORT", "HEARTBEAT_INTERVAL"):
        monkeypatch.delenv(f"EDGESCORE_AGENT_{key}", raising=False)
    path = tmp_path / "agent.json"
    path.write_text(json.dumps({"server": "file:1", "device_class": "pi5", "token": "ft",
                                "metrics_port": 9100, "tags": {"site": "lab", "rack": "1"}}))
    cfg = config.load_config(["--config", str(path)])
    assert (cfg.server, cfg.device_class, cfg.token, cfg.metrics_port) == ("file:1", "pi5", "ft",
                                                                           9100)
    monkeypatch.setenv("EDGESCORE_AGENT_SERVER", "env:2")
    monkeypatch.setenv("EDGESCORE_AGENT_TAGS", "rack=2,owner=me")
    monkeypatch.setenv("EDGESCORE_AGENT_METRICS_PORT", "0")
    cfg = config.load_config(["--config", str(path), "--server", "flag:3", "--tag", "owner=you"])
    assert cfg.server == "flag:3" and cfg.device_class == "pi5" and cfg.metrics_port == 0
    assert cfg.tags == {"site": "lab", "rack": "2", "owner": "you"}
    assert cfg.heartbeat_interval == 5.0 and not cfg.tls


def test_config_toml_and_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGESCORE_AGENT_SERVER", raising=False)
    toml = tmp_path / "agent.toml"
    toml.write_text('server = "t:4"\ncooldown_max_wait = 12.5\n[tags]\nboard = "rpi5"\n')
    cfg = config.load_config(["--config", str(toml)])
    assert cfg.server == "t:4" and cfg.cooldown_max_wait == 12.5 and cfg.tags == {"board": "rpi5"}
    bad = tmp_path / "bad.json"
    bad.write_text('{"no_such_setting": 1}')
    with pytest.raises(SystemExit):
        config.load_config(["--config", str(bad)])
    with pytest.raises(SystemExit):
        config.load_config(["--tls-cert", "c.pem"])  # a key must come with it


def test_config_refuses_what_it_cannot_use(tmp_path, monkeypatch, capsys):
    """Found by review: each of these was dropped, crashed, or became a nonsense value."""
    for key in ("SERVER", "TAGS", "HEARTBEAT_INTERVAL"):
        monkeypatch.delenv(f"EDGESCORE_AGENT_{key}", raising=False)
    cfg = config.load_config(["--tag", "a=1,b=2", "--tag", "c=3"])
    assert cfg.tags == {"a": "1", "b": "2", "c": "3"}  # b=2 was dropped
    for text, needle in (("[1, 2]", "must hold an object"), ('{"server": null}', "server"),
                         ('{"heartbeat_interval": "nan"}', "finite")):
        path = tmp_path / "agent.json"
        path.write_text(text)
        with pytest.raises(SystemExit):
            config.load_config(["--config", str(path)])
        assert needle in capsys.readouterr().err
    with pytest.raises(SystemExit):
        config.load_config(["--heartbeat-interval", "inf"])


def test_capabilities_advertise_litert_for_tflite():
    from edgescore.device_agent.capabilities import runtimes

    litert = [r for r in runtimes() if r.name == "ai-edge-litert"]
    assert litert and list(litert[0].formats) == ["tflite"] and litert[0].version
