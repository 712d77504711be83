"""Latency predictor: per device class (and space), gradient-boosted trees on log latency.

Trained on measurements as they arrive; predicts a median with a 10-90 % interval from two
quantile models, so a PREDICTED latency carries its uncertainty. Log latency because device
latencies span an order of magnitude and errors are relative (MAPE, within +-10 %).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

import numpy as np

from edgescore.server.errors import ServerError
from edgescore.server.scoring.ranks import spearman
from edgescore.server.scoring.transfer_bank import TransferBank
from edgescore.server.scoring.workload import Settings, workload

if TYPE_CHECKING:
    from sklearn.ensemble import GradientBoostingRegressor

Features = Mapping[str, float]
Featurizer = Callable[[str, str], Features]  # (space, arch spec) -> features


def default_featurize(space: str, arch: str) -> Features:
    if space == "nb201":
        from edgescore.server.scoring.features import nb201_features

        return nb201_features(arch)
    if space == "fbnet":
        from edgescore.server.scoring.fbnet_features import fbnet_features

        return fbnet_features(arch)
    raise KeyError(f"no latency features for space {space!r}")


@dataclass(frozen=True)
class Prediction:
    median_ms: float
    low_ms: float  # 10th percentile
    high_ms: float  # 90th percentile

    @property
    def uncertainty_ms(self) -> float:
        """Half the 10-90 % interval (v1 LatencyResult.uncertainty_ms)."""
        return (self.high_ms - self.low_ms) / 2


class LatencyPredictor:
    """One device class's model. `add` points; `predict` retrains first when `retrain_every`
    new points arrived since the last fit (or on `fit()`), and answers None below `min_points`.
    Thread-safe: fits and predictions are serialised."""

    def __init__(self, *, retrain_every: int = 25, min_points: int = 20, seed: int = 0,
                 n_estimators: int = 300, quantiles: tuple[float, float] = (0.1, 0.9)) -> None:
        self.retrain_every, self.min_points, self.seed = retrain_every, min_points, seed
        self.n_estimators, self.quantiles = n_estimators, quantiles
        self._x: list[Features] = []
        self._y: list[float] = []
        # key (an arch) -> its point: a network measured again, or fed live and then loaded from
        # the store, updates its one point instead of counting twice.
        self._slots: dict[str, int] = {}
        self._names: list[str] = []
        self._models: Optional[tuple[Any, Any, Any]] = None
        self._changes = 0  # points added or updated
        self._fitted_at = 0  # `_changes` when the models were fitted
        self._lock = threading.Lock()

    @property
    def n_points(self) -> int:
        return len(self._y)

    @property
    def stale(self) -> bool:
        new = self._changes - self._fitted_at
        return len(self._y) >= self.min_points and (
            self._models is None or new >= self.retrain_every)

    def add(self, features: Features, latency_ms: float, key: Optional[str] = None) -> None:
        """One point; a `key` seen before (the same arch) replaces that point's latency."""
        if not (latency_ms > 0 and math.isfinite(latency_ms)):
            return  # a failed or absurd measurement teaches nothing
        with self._lock:
            self._changes += 1
            slot = self._slots.get(key) if key is not None else None
            if slot is not None:
                self._y[slot] = float(latency_ms)
                return
            if key is not None:
                self._slots[key] = len(self._y)
            self._x.append(dict(features))
            self._y.append(float(latency_ms))

    def points(self) -> tuple[list[Features], list[float], int]:
        """A copy of the points (features, latency ms) and the change count they are at."""
        with self._lock:
            return list(self._x), list(self._y), self._changes

    def _model(self, **loss: Any) -> GradientBoostingRegressor:
        # Imported on first fit: scikit-learn costs every server start about a second.
        from sklearn.ensemble import GradientBoostingRegressor

        # Shallow trees, shrinkage and subsampling: a few hundred points must not be memorised.
        return GradientBoostingRegressor(n_estimators=self.n_estimators, max_depth=3,
                                         learning_rate=0.05, subsample=0.8,
                                         random_state=self.seed, **loss)

    def fit(self) -> bool:
        """Train on every point so far; False when there are fewer than `min_points`."""
        with self._lock:
            return self._fit()

    def _fit(self) -> bool:
        if len(self._y) < self.min_points:
            return False
        self._names = sorted({name for x in self._x for name in x})
        matrix, target = self._matrix(self._x), np.log(np.asarray(self._y))
        low, high = self.quantiles
        models = (self._model(loss="squared_error"),
                  self._model(loss="quantile", alpha=low),
                  self._model(loss="quantile", alpha=high))
        for model in models:
            model.fit(matrix, target)
        self._models, self._fitted_at = models, self._changes
        return True

    def _matrix(self, rows: Sequence[Features]) -> np.ndarray:
        return np.asarray([[float(x.get(name, 0.0)) for name in self._names] for x in rows])

    def predict_many(self, rows: Sequence[Features]) -> Optional[list[Prediction]]:
        with self._lock:
            if self.stale:
                self._fit()
            if self._models is None:
                return None
            matrix = self._matrix(rows)
            median, low, high = (np.exp(m.predict(matrix)) for m in self._models)
        # Quantile models are fitted separately and may cross: keep low <= median <= high.
        return [Prediction(float(m), float(min(lo, m)), float(max(hi, m)))
                for m, lo, hi in zip(median, low, high)]

    def predict(self, features: Features) -> Optional[Prediction]:
        result = self.predict_many([features])
        return None if result is None else result[0]


Shape = tuple[int, int]  # (num_classes, input_resolution) of the measured network


def _default_shape(space: str) -> Shape:
    """The space's default class count and resolution (KeyError: no such space)."""
    from edgescore.server.spaces import registry

    try:
        return registry.default_shape(space)
    except ServerError as exc:  # a space this server does not have
        raise KeyError(space) from exc


class PredictorBank:
    """One predictor per (device class, space, network shape, workload): the service's entry
    point.

    The shape (class count, input resolution) and the workload (format, precision, batch size,
    threads: `workload.py`) are part of the key because features describe the cell, and one
    cell at 64x64, or at batch 64, runs far longer than at 32x32 and batch 1: a predictor never
    answers for a shape or workload it has not seen measured. `observe` after each measurement,
    `predict` when no agent of the class can answer, `load` at start-up from the store's
    measurements (those that name their architecture; `arch_shape` in their stats, else the
    space's default, which is what measurements stored without it were taken at)."""

    def __init__(self, featurize: Featurizer = default_featurize, *,
                 transfer: Union[TransferBank, None, str] = "default",
                 **predictor_kw: Any) -> None:
        self._featurize = featurize
        # A space with a shipped prior is predicted by transfer (scoring/transfer_bank.py), from
        # 5 points; others by the class's own model alone, from `min_points`.
        self.transfer = (TransferBank(featurize, LatencyPredictor, stack_kw=predictor_kw)
                         if transfer == "default" else transfer)
        self._kw = predictor_kw
        self._predictors: dict[tuple[str, str, Shape, str], LatencyPredictor] = {}
        self._lock = threading.Lock()

    def predictor(self, device_class: str, space: str, shape: Optional[Shape] = None,
                  settings: Settings = None) -> LatencyPredictor:
        key = (device_class, space, tuple(shape) if shape else _default_shape(space),
               workload(settings))
        with self._lock:
            if key not in self._predictors:
                self._predictors[key] = LatencyPredictor(**self._kw)
            return self._predictors[key]

    def has_measurements(self, device_class: str, space: str) -> bool:
        """Whether any shape of this class and space has been observed."""
        with self._lock:
            return any(p.n_points > 0 for (c, s, _, _), p in self._predictors.items()
                       if (c, s) == (device_class, space))

    def observe(self, device_class: str, space: str, arch: str, latency_ms: float,
                shape: Optional[Shape] = None, settings: Settings = None) -> None:
        features = self._featurize(space, arch)
        # Keyed by the arch: each measured network is one point, however often it arrives.
        self.predictor(device_class, space, shape, settings).add(features, latency_ms, key=arch)

    def predict(self, device_class: str, space: str, arch: str, shape: Optional[Shape] = None,
                settings: Settings = None) -> Optional[Prediction]:
        """None when the class has too few measurements of this space, shape and workload (five
        where the space has a prior to borrow from, else `min_points`), or no features."""
        try:
            features = self._featurize(space, arch)
            predictor = self.predictor(device_class, space, shape, settings)
        except KeyError:
            return None
        if self.transfer is not None:
            with self._lock:
                sources = [("/".join(map(str, key)), p) for key, p in self._predictors.items()
                           if key[1] == space]
            borrowed = self.transfer.predict_many(space, device_class, predictor, sources,
                                                  [features])
            if borrowed is not None:
                median, low, high = borrowed[0]
                return Prediction(median, low, high)
        return predictor.predict(features)

    def load(self, store: Any, device_classes: Sequence[str]) -> int:
        """Feed the store's measurements of these classes; returns how many were used."""
        used = 0
        for device in device_classes:
            for record in store.measurements_for_device(device):
                median = record.median_ms
                if median is None:
                    continue
                try:
                    self.observe(device, record.space, record.arch, median,
                                 record.stats.get("arch_shape"), record.key.settings)
                except KeyError:
                    continue  # a space without features
                used += 1
        return used


@dataclass(frozen=True)
class AccuracyReport:
    spearman: float
    mape: float  # mean absolute percentage error, %
    median_ape: float  # median absolute percentage error, % (robust to a few tiny latencies)
    within_10pct: float  # share of predictions within +-10 % of the truth, %
    interval_coverage: float  # share of truths inside the 10-90 % interval, %
    n_train: int
    n_test: int
    fit_seconds: float


def accuracy_report(archs: Sequence[Union[str, Features]], latencies: Sequence[float],
                    train_fraction: float = 0.5, seed: int = 0, *, space: str = "nb201",
                    featurize: Featurizer = default_featurize,
                    **predictor_kw: Any) -> AccuracyReport:
    """Train on a seeded random `train_fraction` of (arch, latency) pairs, report on the rest.
    `archs` are arch specs of `space` (featurised) or ready feature dicts."""
    if len(archs) != len(latencies):
        raise ValueError(f"{len(archs)} archs but {len(latencies)} latencies")
    rows = [a if isinstance(a, Mapping) else featurize(space, a) for a in archs]
    order = np.random.default_rng(seed).permutation(len(rows))
    cut = int(round(train_fraction * len(rows)))
    train, test = order[:cut], order[cut:]
    predictor = LatencyPredictor(seed=seed, min_points=1, **predictor_kw)
    for i in train:
        predictor.add(rows[i], latencies[i])
    started = time.perf_counter()
    predictor.fit()
    fit_seconds = time.perf_counter() - started
    predictions = predictor.predict_many([rows[i] for i in test]) or []
    truth = np.asarray([latencies[i] for i in test], dtype=float)
    median = np.asarray([p.median_ms for p in predictions])
    error = np.abs(median - truth) / truth
    inside = [p.low_ms <= t <= p.high_ms for p, t in zip(predictions, truth)]
    return AccuracyReport(spearman=spearman(median, truth), mape=100 * float(error.mean()),
                          median_ape=100 * float(np.median(error)),
                          within_10pct=100 * float((error <= 0.10).mean()),
                          interval_coverage=100 * float(np.mean(inside)),
                          n_train=len(train), n_test=len(test), fit_seconds=fit_seconds)
