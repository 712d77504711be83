"""Latency predictor: NB201 and FBNet features, learning a known function, uncertainty,
retraining."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from conftest import SHARED

from edgescore.server.proxies.flops import count_macs
from edgescore.server.scoring.features import nb201_features
from edgescore.server.scoring.population import nb201_sampler
from edgescore.server.scoring.predictor import (
    LatencyPredictor,
    PredictorBank,
    accuracy_report,
)
from edgescore.server.spaces.nb201 import SPACE
from edgescore.server.store import MeasurementKey, open_store


def synthetic(n: int, seed: int = 0) -> tuple[list[dict[str, float]], list[float]]:
    """Latency a known function of the features, with 2 % multiplicative noise."""
    rng = np.random.default_rng(seed)
    rows = [{"convs": float(rng.integers(0, 7)), "macs": float(rng.uniform(5, 200)),
             "noise_feature": float(rng.normal())} for _ in range(n)]
    latency = [(1.0 + 0.8 * r["convs"] + 0.05 * r["macs"]) * math.exp(rng.normal(0, 0.02))
               for r in rows]
    return rows, latency


def test_learns_a_known_function_with_uncertainty() -> None:
    rows, latency = synthetic(400)
    report = accuracy_report(rows, latency, train_fraction=0.5, seed=1, n_estimators=200)
    assert report.spearman > 0.95 and report.mape < 10 and report.within_10pct > 60
    assert (report.n_train, report.n_test) == (200, 200)
    predictor = LatencyPredictor(min_points=10, n_estimators=100)
    for r, y in zip(rows[:200], latency[:200]):
        predictor.add(r, y)
    prediction = predictor.predict(rows[300])
    assert prediction.low_ms <= prediction.median_ms <= prediction.high_ms
    assert prediction.uncertainty_ms > 0
    assert abs(prediction.median_ms - latency[300]) / latency[300] < 0.25


def test_retrains_after_enough_new_points() -> None:
    rows, latency = synthetic(60)
    predictor = LatencyPredictor(min_points=20, retrain_every=10, n_estimators=20)
    for r, y in zip(rows[:19], latency[:19]):
        predictor.add(r, y)
    assert predictor.predict(rows[0]) is None  # too few points
    predictor.add(rows[19], latency[19])
    predictor.add(rows[20], float("nan"))  # ignored: teaches nothing
    assert predictor.n_points == 20 and predictor.predict(rows[0]) is not None
    for r, y in zip(rows[21:30], latency[21:30]):
        predictor.add(r, y)
    assert not predictor.stale  # 9 new points
    predictor.add(rows[30], latency[30])
    assert predictor.stale
    predictor.predict(rows[0])
    assert not predictor.stale


def test_nb201_features_match_the_builder_and_see_dead_edges() -> None:
    # Node 1 feeds nothing, so its conv is pruned from the measured network and not counted.
    for spec in ["|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"]:
        arch = SPACE.parse(spec)
        network = SPACE.build_exportable(arch)
        features = nb201_features(spec)
        assert features["macs_m"] * 1e6 == pytest.approx(count_macs(network, arch.input_shape))
        params = sum(p.numel() for p in network.parameters())
        assert features["params_m"] * 1e6 == pytest.approx(params)
    example = nb201_features(SPACE.example)
    assert (example["live_nor_conv_3x3"], example["live_skip_connect"]) == (3, 2)
    assert (example["adds"], example["depth"], example["degenerate"]) == (3, 3, 0)
    # No live edge; a conv on real data that feeds nothing, a pool on zeros that feeds the output.
    dead = nb201_features("|none~0|+|nor_conv_3x3~0|none~1|+|none~0|avg_pool_3x3~1|none~2|")
    assert dead["live_edges"] == 0 and dead["degenerate"] == 1
    assert (dead["fed_nor_conv_3x3"], dead["feeding_nor_conv_3x3"]) == (1, 0)
    assert (dead["fed_avg_pool_3x3"], dead["feeding_avg_pool_3x3"]) == (0, 1)


def test_bank_learns_from_the_store(tmp_path) -> None:
    archs = nb201_sampler(40, seed=2)
    bank = PredictorBank(transfer=None, min_points=20, n_estimators=50)
    with open_store(tmp_path / "s.db") as store:
        for i, arch in enumerate(archs):
            latency = 2.0 + 0.1 * nb201_features(arch)["macs_m"]
            key = MeasurementKey.make(f"{i:064x}", "raspi4", "onnxruntime", "1.18")
            store.put_measurement(key, {"median_ms": latency}, space="nb201", arch=arch)
        store.put_measurement(MeasurementKey.make("0" * 64, "raspi4", "ort", "1"),
                              {"median_ms": 1.0})  # unknown arch: not used
        assert bank.load(store, ["raspi4", "pixel3"]) == 40
    prediction = bank.predict("raspi4", "nb201", SPACE.example)
    truth = 2.0 + 0.1 * nb201_features(SPACE.example)["macs_m"]
    assert prediction is not None and abs(prediction.median_ms - truth) / truth < 0.3
    assert bank.predict("pixel3", "nb201", SPACE.example) is None  # no data for the class
    assert bank.predict("raspi4", "macro", "anything") is None  # no features for the space
    # Stored without a shape: taken at the space's default, and only that shape is answered.
    assert bank.predict("raspi4", "nb201", SPACE.example, (10, 32)) is not None
    assert bank.predict("raspi4", "nb201", SPACE.example, (10, 64)) is None
    assert bank.predict("raspi4", "nb201", SPACE.example, (100, 32)) is None
    assert bank.has_measurements("raspi4", "nb201") and not bank.has_measurements("pixel3", "nb201")


def test_fbnet_predictor_on_helps_raspberry_pi_4_latencies() -> None:
    table = SHARED / "data" / "fbnet" / "help_latency_27devices_dev.csv"
    if not table.exists():
        pytest.skip(f"{table} is not here")
    with table.open() as f:
        rows = [row for _, row in zip(range(200), csv.DictReader(f))]
    archs, latency = [r["arch_str"] for r in rows], [float(r["raspi4_ms"]) for r in rows]
    report = accuracy_report(archs, latency, seed=0, space="fbnet", n_estimators=100)
    # 100 train, 100 test: rho 0.95 when written; MACs alone rank the 200 with 0.92.
    assert (report.n_train, report.n_test) == (100, 100)
    assert report.spearman > 0.9 and report.mape < 10, report
    bank = PredictorBank(transfer=None, min_points=20, n_estimators=50)
    for arch, ms in zip(archs[:40], latency[:40]):
        bank.observe("raspi4", "fbnet", arch, ms)
    prediction = bank.predict("raspi4", "fbnet", archs[50])
    assert prediction is not None and abs(prediction.median_ms - latency[50]) / latency[50] < 0.3


def test_each_measurement_counts_once_across_live_feeding_and_loading(tmp_path) -> None:
    """Ten archs measured live, then the same ten loaded from the store (the first prediction
    for a class loads it; a restart loads it again): ten points, so no model below 20."""
    archs = nb201_sampler(10, seed=3)
    bank = PredictorBank(transfer=None, min_points=20, n_estimators=20)
    with open_store(tmp_path / "s.db") as store:
        for i, arch in enumerate(archs):
            key = MeasurementKey.make(f"{i:064x}", "raspi4", "onnxruntime", "1.18")
            store.put_measurement(key, {"median_ms": 2.0 + i}, space="nb201", arch=arch)
            bank.observe("raspi4", "nb201", arch, 2.0 + i)
        assert bank.load(store, ["raspi4"]) == 10
        assert bank.load(store, ["raspi4"]) == 10
    predictor = bank.predictor("raspi4", "nb201")
    assert predictor.n_points == 10
    assert bank.predict("raspi4", "nb201", archs[0]) is None
    # A new measurement of a known arch updates its point.
    bank.observe("raspi4", "nb201", archs[0], 50.0)
    assert predictor.n_points == 10


def test_bank_keeps_one_predictor_per_network_shape(tmp_path) -> None:
    archs = nb201_sampler(40, seed=3)
    bank = PredictorBank(transfer=None, min_points=20, n_estimators=50)
    with open_store(tmp_path / "s.db") as store:
        for i, arch in enumerate(archs):
            latency = 4 * (2.0 + 0.1 * nb201_features(arch)["macs_m"])  # as if at 64x64
            key = MeasurementKey.make(f"{i:064x}", "raspi4", "onnxruntime", "1.18")
            store.put_measurement(key, {"median_ms": latency, "arch_shape": [10, 64]},
                                  space="nb201", arch=arch)
        assert bank.load(store, ["raspi4"]) == 40
    assert bank.predict("raspi4", "nb201", SPACE.example) is None  # nothing at 32x32
    at_64 = bank.predict("raspi4", "nb201", SPACE.example, (10, 64))
    truth = 4 * (2.0 + 0.1 * nb201_features(SPACE.example)["macs_m"])
    assert at_64 is not None and abs(at_64.median_ms - truth) / truth < 0.3


def test_bank_keeps_one_predictor_per_workload() -> None:
    """A batch-64 INT8 request is not predicted from batch-1 FP32 measurements."""
    from edgescore.v1 import common_pb2

    bank = PredictorBank(transfer=None, min_points=20, n_estimators=50)
    batch1 = {"format": "ONNX", "precision": "FP32", "batch_size": 1, "min_runs": 10,
              "input_shape": [1, 3, 32, 32]}
    for arch in nb201_sampler(30, seed=4):
        bank.observe("raspi4", "nb201", arch, 1.0 + nb201_features(arch)["macs_m"], (10, 32),
                     batch1)
    same = common_pb2.MeasurementSettings(batch_size=1, min_runs=30, format=common_pb2.ONNX,
                                          precision=common_pb2.FP32, input_shape=[1, 3, 32, 32])
    other = common_pb2.MeasurementSettings(batch_size=64, format=common_pb2.ONNX,
                                           precision=common_pb2.INT8,
                                           input_shape=[64, 3, 32, 32])
    # The run counts are protocol, not workload: other min_runs still get a prediction.
    assert bank.predict("raspi4", "nb201", SPACE.example, (10, 32), same) is not None
    assert bank.predict("raspi4", "nb201", SPACE.example, (10, 32), other) is None
