"""Artifacts in every format x precision: export, quantization kind, parity, determinism; the
latency service's artifact cache; the fleet sending a job only to an agent that runs its format."""

from __future__ import annotations

import asyncio
import time

import grpc
import numpy as np
import onnx
import pytest
import torch

from edgescore.server.compute.plane import Caller
from edgescore.server.compute.units import ArchRef
from edgescore.server.errors import InvalidArgument
from edgescore.server.export import onnx_int8, parity
from edgescore.server.export.artifacts import ArtifactStore
from edgescore.server.export.exporter import Exporter, build_network
from edgescore.server.export.onnx_export import export_onnx
from edgescore.server.export.result import (
    DYNAMIC_RANGE_INT8,
    FP32,
    STATIC_INT8,
    ExportError,
    ExportResult,
    ParityReport,
    classify,
)
from edgescore.server.fleet.exports import Exports
from edgescore.server.fleet.fleet import Fleet
from edgescore.server.fleet.latency import LatencyService
from edgescore.server.fleet.measurement import Target, resolve_measurement
from edgescore.server.spaces.nb201 import SPACE
from edgescore.v1 import agent_pb2, common_pb2, fleet_pb2

ONNX, TFLITE = common_pb2.ONNX, common_pb2.TFLITE
CALLER = Caller("test")
ARCHS = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|nor_conv_1x1~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_1x1~2|",
)
DEGENERATE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
COMBOS = [(a, f, p) for a in ARCHS for f in (ONNX, TFLITE)
          for p in (common_pb2.FP32, common_pb2.INT8)]


class Artifacts:
    """Each artifact exported once per test module (a TFLite conversion takes seconds)."""

    def __init__(self) -> None:
        self.exporter = Exporter()
        self._done: dict[tuple[str, int, int], ExportResult] = {}

    def get(self, arch: str, fmt: int, precision: int) -> ExportResult:
        key = (arch, fmt, precision)
        if key not in self._done:
            fp32 = None
            if precision == common_pb2.INT8:
                fp32 = self.get(arch, fmt, common_pb2.FP32).data
            self._done[key] = self.exporter.export(SPACE.parse(arch), fmt, precision, 1, fp32)
        return self._done[key]


@pytest.fixture(scope="module")
def artifacts() -> Artifacts:
    return Artifacts()


@pytest.mark.parametrize(("arch", "fmt", "precision"), COMBOS)
def test_every_format_and_precision_exports_with_parity(artifacts, arch, fmt, precision) -> None:
    result = artifacts.get(arch, fmt, precision)
    assert (result.format, result.precision) == (fmt, precision)
    if fmt == TFLITE:
        assert result.data[4:8] == b"TFL3"  # the flatbuffer file identifier
    else:
        onnx.checker.check_model(onnx.load_from_string(result.data))
    report = result.parity
    assert report.images == 64
    if precision == common_pb2.FP32:
        assert result.quantization == FP32
        assert report.max_abs_diff < parity.FP32_ATOL * 10 and report.top1_agreement == 1.0
    else:
        # Static calibration works for these networks: no fallback expected.
        assert result.quantization == STATIC_INT8, result.note
        assert report.rel_error <= parity.INT8_MAX_REL_ERROR
        assert report.top1_agreement >= parity.INT8_MIN_TOP1_AGREEMENT
        assert len(result.data) < len(artifacts.get(arch, fmt, common_pb2.FP32).data) / 2


def test_tflite_fp32_runs_in_litert_close_to_torch(artifacts) -> None:
    from ai_edge_litert.interpreter import Interpreter

    result = artifacts.get(ARCHS[0], TFLITE, common_pb2.FP32)
    interpreter = Interpreter(model_content=result.data)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert list(inp["shape"]) == [1, 3, 32, 32]  # NCHW, the shape the job's settings carry
    x = torch.randn((1, 3, 32, 32), generator=torch.Generator().manual_seed(5))
    interpreter.set_tensor(inp["index"], x.numpy())
    interpreter.invoke()
    with torch.no_grad():
        expected = build_network(SPACE.parse(ARCHS[0])).eval()(x).numpy()
    assert np.abs(interpreter.get_tensor(out["index"]) - expected).max() < 1e-4


def test_int8_artifacts_keep_float_io_and_hold_int8(artifacts) -> None:
    from ai_edge_litert.interpreter import Interpreter

    tfl = Interpreter(model_content=artifacts.get(ARCHS[1], TFLITE, common_pb2.INT8).data)
    assert tfl.get_input_details()[0]["dtype"] == np.float32
    assert tfl.get_output_details()[0]["dtype"] == np.float32
    dtypes = {t["index"]: t["dtype"] for t in tfl.get_tensor_details()}
    convs = [op for op in tfl._get_ops_details() if op["op_name"] == "CONV_2D"]
    assert convs and all(dtypes[op["inputs"][0]] == np.int8 for op in convs)  # integer kernels
    onnx_int8_bytes = artifacts.get(ARCHS[1], ONNX, common_pb2.INT8).data
    assert onnx_int8.int8_nodes(onnx_int8_bytes) > 10


def test_onnx_int8_runs_integer_kernels(artifacts, tmp_path) -> None:
    # What onnxruntime really runs: every QDQ Conv fused into QLinearConv (none left in float).
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(artifacts.get(ARCHS[1], ONNX, common_pb2.INT8).data, options,
                         providers=["CPUExecutionProvider"])
    ops = [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]
    assert "Conv" not in ops and ops.count("QLinearConv") >= 20


def test_same_weights_same_bytes(artifacts) -> None:
    arch = SPACE.parse(ARCHS[0])
    exporter = artifacts.exporter
    for fmt in (ONNX, TFLITE):
        fp32 = artifacts.get(ARCHS[0], fmt, common_pb2.FP32).data
        # int8 from the same float model: calibration images and ranges are fixed, so are bytes.
        again = exporter.export(arch, fmt, common_pb2.INT8, 1, fp32)
        assert again.data == artifacts.get(ARCHS[0], fmt, common_pb2.INT8).data
    assert exporter.export(arch, ONNX, common_pb2.FP32, 1).data == \
        artifacts.get(ARCHS[0], ONNX, common_pb2.FP32).data
    assert exporter.export(arch, TFLITE, common_pb2.FP32, 1).data == \
        artifacts.get(ARCHS[0], TFLITE, common_pb2.FP32).data


def test_static_failure_falls_back_to_dynamic_range(artifacts, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("calibration exploded")

    monkeypatch.setattr(onnx_int8, "quantize_static", broken)
    fp32 = artifacts.get(ARCHS[1], ONNX, common_pb2.FP32).data
    result = artifacts.exporter.export(SPACE.parse(ARCHS[1]), ONNX, common_pb2.INT8, 1, fp32)
    assert result.quantization == DYNAMIC_RANGE_INT8
    assert "calibration exploded" in result.note
    assert result.parity.rel_error < 0.1  # weights-only int8 stays close to float
    assert onnx_int8.int8_nodes(result.data) > 0


def test_parity_failure_is_parity_failed(artifacts, monkeypatch) -> None:
    real = parity.run_artifact
    monkeypatch.setattr(parity, "run_artifact", lambda *a: -real(*a))  # e.g. a sign error
    arch = SPACE.parse(ARCHS[1])
    for precision in (common_pb2.FP32, common_pb2.INT8):
        with pytest.raises(ExportError) as info:
            artifacts.exporter.export(arch, ONNX, precision, 1)
        assert info.value.failure_kind == common_pb2.PARITY_FAILED
        assert "parity failed" in info.value.message


def test_degenerate_network_has_nothing_to_quantize_in_tflite(artifacts) -> None:
    # The TFLite converter folds the cell's x * 0, leaving a constant model (see the docs).
    arch = SPACE.parse(DEGENERATE)
    fp32 = artifacts.exporter.export(arch, TFLITE, common_pb2.FP32, 1)
    assert fp32.quantization == FP32
    with pytest.raises(ExportError) as info:
        artifacts.exporter.export(arch, TFLITE, common_pb2.INT8, 1, fp32.data)
    assert info.value.failure_kind == common_pb2.EXPORT_FAILED
    assert "quantized nothing" in info.value.message


def test_converter_errors_are_classified() -> None:
    class Svd(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.linalg.svd(x)[1]

    with pytest.raises(Exception) as info:
        export_onnx(Svd(), (1, 3, 4, 4))
    error = classify(info.value, "onnx fp32 export")
    assert error.failure_kind == common_pb2.UNSUPPORTED_OP and "linalg_svd" in error.message
    litert = classify(RuntimeError("Lowering not found: aten._linalg_svd.default\n..."), "tflite")
    assert litert.failure_kind == common_pb2.UNSUPPORTED_OP
    assert "aten._linalg_svd.default" in litert.message
    other = classify(ValueError("bad things\nmore"), "tflite fp32 export")
    assert other.failure_kind == common_pb2.EXPORT_FAILED and "bad things" in other.message


# -- latency service and fleet ----------------------------------------------------------------


class FakeExporter:
    """Stands in for the compute plane's export runs: records the units it is given."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int, bool]] = []

    async def __call__(self, unit, caller) -> ExportResult:
        fmt, precision, batch_size, fp32 = unit.fmt, unit.precision, unit.batch_size, unit.fp32
        self.calls.append((fmt, precision, batch_size, fp32 is not None))
        kind = STATIC_INT8 if precision == common_pb2.INT8 else FP32
        data = f"{unit.arch.spec}/{fmt}/{precision}/{batch_size}".encode()
        return ExportResult(data, fmt, precision, kind, ParityReport(1, 0.0, 0.0, 1.0))


def caps(device_class: str, *formats: str) -> agent_pb2.Capabilities:
    runtimes = [fleet_pb2.RuntimeInfo(name=f"rt-{f}", version="1", formats=[f]) for f in formats]
    return agent_pb2.Capabilities(device_class=device_class, hostname="h", runtimes=runtimes)


def job(fmt: int) -> agent_pb2.Job:
    return agent_pb2.Job(artifact=agent_pb2.Artifact(sha256="0" * 64, format=fmt))


@pytest.fixture
def fleet():
    f = Fleet(heartbeat_interval=60)
    yield f
    f.close()


def test_resolve_accepts_formats_and_precisions() -> None:
    arch = SPACE.parse(ARCHS[0])
    default = resolve_measurement(common_pb2.MeasurementSettings(), arch, "devices[0].settings")
    assert (default.format, default.precision) == (ONNX, common_pb2.FP32)
    asked = common_pb2.MeasurementSettings(format=TFLITE, precision=common_pb2.INT8)
    s = resolve_measurement(asked, arch, "devices[0].settings")
    assert (s.format, s.precision) == (TFLITE, common_pb2.INT8)
    with pytest.raises(InvalidArgument, match="devices.0..settings.format"):
        resolve_measurement(common_pb2.MeasurementSettings(format=7), arch, "devices[0].settings")


def test_artifact_cache_key_has_format_precision_and_batch() -> None:
    exporter = FakeExporter()
    exports = Exports(exporter, ArtifactStore())
    arch = SPACE.parse(ARCHS[0])
    ref = ArchRef("nb201", ARCHS[0])

    async def scenario() -> None:
        first = await exports.get(arch, ref, TFLITE, common_pb2.INT8, 1, CALLER)
        # int8 is quantized from the float artifact, which is exported (and cached) first.
        assert exporter.calls == [(TFLITE, common_pb2.FP32, 1, False),
                                  (TFLITE, common_pb2.INT8, 1, True)]
        assert await exports.get(arch, ref, TFLITE, common_pb2.INT8, 1, CALLER) == first
        assert (await exports.get(arch, ref, TFLITE, common_pb2.FP32, 1, CALLER)
                ).quantization == FP32
        assert len(exporter.calls) == 2  # both served from the cache
        assert first.quantization == STATIC_INT8 and len(first.sha256) == 64
        await exports.get(arch, ref, TFLITE, common_pb2.INT8, 4, CALLER)
        await exports.get(arch, ref, ONNX, common_pb2.INT8, 1, CALLER)
        assert len(exporter.calls) == 6
        # Concurrent requests for one new artifact wait on one export.
        await asyncio.gather(*(exports.get(arch, ref, ONNX, common_pb2.FP32, 8, CALLER)
                               for _ in range(5)))
        assert len(exporter.calls) == 7

    asyncio.run(scenario())


def test_job_goes_only_to_an_agent_with_its_format(fleet) -> None:
    onnx_only = fleet.register(caps("pi4", "onnx"))     # older, so first choice for ONNX
    both = fleet.register(caps("pi4", "onnx", "tflite"))
    tfl = fleet.submit("pi4", job(TFLITE))
    assert both.outbox.get_nowait().job.job_id == tfl.job.job_id
    queued_tfl = fleet.submit("pi4", job(TFLITE))       # `both` is busy: it waits ...
    onnx = fleet.submit("pi4", job(ONNX))               # ... without holding up ONNX work
    assert onnx_only.outbox.get_nowait().job.job_id == onnx.job.job_id
    fleet.complete(onnx_only, agent_pb2.AgentMessage(
        result=agent_pb2.JobResult(job_id=onnx.job.job_id)))
    assert onnx_only.outbox.empty()                     # never a TFLite job for it
    fleet.complete(both, agent_pb2.AgentMessage(result=agent_pb2.JobResult(job_id=tfl.job.job_id)))
    assert both.outbox.get_nowait().job.job_id == queued_tfl.job.job_id


def test_format_no_agent_runs_fails_fast(fleet) -> None:
    agent = fleet.register(caps("pi4", "onnx"))
    service = LatencyService(fleet, Exports(FakeExporter()))
    arch = SPACE.parse(ARCHS[0])
    settings = resolve_measurement(
        common_pb2.MeasurementSettings(format=TFLITE, precision=common_pb2.INT8), arch, "d")
    started = time.monotonic()
    result = asyncio.run(service.measure(arch, ArchRef("nb201", ARCHS[0]),
                                         Target("pi4", settings), 60, time.monotonic() + 60,
                                         CALLER))
    assert time.monotonic() - started < 5
    # FAILED_PRECONDITION at once, rather than DEADLINE_EXCEEDED after the latency timeout.
    assert result.status.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert result.status.failure_kind == common_pb2.UNSUPPORTED_FORMAT
    assert "'tflite'" in result.status.message and "'pi4'" in result.status.message
    assert result.quantization == STATIC_INT8
    assert (result.settings.format, result.settings.precision) == (TFLITE, common_pb2.INT8)
    assert agent.outbox.empty()


def test_agent_listing_no_formats_is_taken_as_onnx(fleet) -> None:
    legacy = fleet.register(agent_pb2.Capabilities(device_class="old", hostname="h"))
    assert fleet.submit("old", job(ONNX)).job.job_id == legacy.outbox.get_nowait().job.job_id
    tfl = fleet.submit("old", job(TFLITE))
    assert tfl.future.result(timeout=1).failure_kind == common_pb2.UNSUPPORTED_FORMAT
