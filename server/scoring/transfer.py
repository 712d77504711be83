"""Cross-device latency transfer: a new device's latencies from a handful of its measurements.

Log latencies of many archs on many devices are close to low rank: a device is mostly a weighting
of a few "directions" in which archs differ (MACs, memory traffic, depth, ...). So:

1. A `DeviceTable` (archs x devices, ms) is the prior: HELP's public tables as shipped
   (server/data/latency_prior_<space>.npz), plus any device class the server has measured enough.
2. `TransferBasis` centres each device's log latencies, takes the top `rank` singular vectors, and
   learns a model from the predictor's arch features to an arch's coordinates (its embedding), so
   any arch of the space, measured or not, gets one. The devices' own weights give a Gaussian
   prior over what a device looks like.
3. `TransferFit` is one target device: Bayesian linear regression of its log latencies on the
   embedding, from its k points, with that prior (and the intercept's prior from the devices'
   mean log latencies). The noise level is chosen by the evidence (marginal likelihood), so few
   points lean on the prior and many points on themselves. The posterior predictive variance,
   plus the embedding model's own error, gives an honest 10-90 % interval.

This is the "shared model with a per-device embedding fitted from the new device's k points" of
issue 16, with the embedding fitted in closed form; HELP (Lee et al., NeurIPS 2021) meta-learns a
network instead. docs/predictor.md has the evidence.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
from threadpoolctl import threadpool_limits

Features = Mapping[str, float]
Z90 = 1.2815515655446004  # the 90th percentile of a standard normal
EMBEDDING_CACHE = 50_000  # archs whose embedding is kept (NB201 has 15,625)
NOISE_GRID = tuple(float(s) for s in np.geomspace(0.01, 0.5, 12))  # log-latency noise levels


def one_thread() -> Any:
    """OpenMP limited to one thread: the server's other work holds the cores, and OpenMP's
    spinning threads on a busy core made one basis fit take minutes instead of seconds."""
    return threadpool_limits(limits=1, user_api="openmp")


@dataclass(frozen=True)
class DeviceTable:
    """Latencies (ms) of the same archs on several devices; `archs` are canonical specs."""

    space: str
    archs: tuple[str, ...]
    devices: tuple[str, ...]
    latency_ms: np.ndarray  # (len(archs), len(devices))
    source: str = ""

    def without(self, devices: Sequence[str]) -> DeviceTable:
        keep = [i for i, d in enumerate(self.devices) if d not in set(devices)]
        return DeviceTable(self.space, self.archs, tuple(self.devices[i] for i in keep),
                           self.latency_ms[:, keep], self.source)

    def rows(self, index: Sequence[int]) -> DeviceTable:
        index = list(index)
        return DeviceTable(self.space, tuple(self.archs[i] for i in index), self.devices,
                           self.latency_ms[index], self.source)

    def with_devices(self, columns: Mapping[str, Sequence[float]]) -> DeviceTable:
        """Extra devices whose latency is known (or predicted) for every arch of the table."""
        if not columns:
            return self
        extra = np.column_stack([np.asarray(v, dtype=float) for v in columns.values()])
        return DeviceTable(self.space, self.archs, self.devices + tuple(columns),
                           np.hstack([self.latency_ms, extra]), self.source)

    def column(self, device: str) -> np.ndarray:
        return self.latency_ms[:, self.devices.index(device)]


ARCH_COLUMNS = ("arch", "arch_str")  # NB201 tables name the spec `arch`, FBNet's `arch_str`


def read_device_table(path: Path, space: str, canonical: Callable[[str], str]) -> DeviceTable:
    """A CSV with an arch column and `<device>_ms` columns (HELP's tables) as a DeviceTable."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"{path}: no rows")
    arch_column = next((c for c in ARCH_COLUMNS if c in rows[0]), None)
    devices = [c[: -len("_ms")] for c in rows[0] if c.endswith("_ms")]
    if arch_column is None or len(devices) < 2:
        raise ValueError(f"{path}: needs an `arch` (or `arch_str`) column and at least two "
                         f"`<device>_ms` columns")
    try:
        latency = np.asarray([[float(row[f"{d}_ms"]) for d in devices] for row in rows])
    except ValueError as exc:
        raise ValueError(f"{path}: a latency is not a number ({exc})") from None
    return DeviceTable(space, tuple(canonical(row[arch_column]) for row in rows),
                       tuple(devices), latency, path.name)


@lru_cache(maxsize=8)
def shipped_prior(space: str) -> Optional[DeviceTable]:
    """The public latency tables shipped for `space` (None: no prior for this space)."""
    ref = resources.files("edgescore.server.data") / f"latency_prior_{space}.npz"
    if not ref.is_file():
        return None
    with resources.as_file(ref) as path, np.load(path) as data:
        return DeviceTable(space, tuple(str(a) for a in data["archs"]),
                           tuple(str(d) for d in data["devices"]),
                           data["latency_ms"].astype(float), str(data["source"]))


def feature_matrix(rows: Sequence[Features], names: Sequence[str]) -> np.ndarray:
    return np.asarray([[float(r.get(n, 0.0)) for n in names] for r in rows], dtype=float)


class TransferBasis:
    """The arch embedding learnt from a DeviceTable, and the prior over device weights."""

    def __init__(self, table: DeviceTable, featurize: Callable[[str], Features], *,
                 rank: int = 6, seed: int = 0, holdout: float = 0.2) -> None:
        log = np.log(table.latency_ms)
        if not np.isfinite(log).all() or log.shape[1] < 2:
            raise ValueError("a transfer basis needs positive latencies of at least two devices")
        self.devices = table.devices
        means = log.mean(axis=0)
        u, s, vt = np.linalg.svd(log - means, full_matrices=False)
        self.rank = rank = min(rank, len(s))
        scale = math.sqrt(len(log))
        coords = u[:, :rank] * s[:rank] / scale  # the archs' embedding, about unit variance
        weights = vt[:rank].T * scale  # (devices, rank): each device's weights
        self.weight_mean = weights.mean(axis=0)
        self.weight_cov = np.cov(weights.T).reshape(rank, rank) + 1e-6 * np.eye(rank)
        self.intercept_mean = float(means.mean())
        self.intercept_var = float(means.var() * 4 + 1.0)  # wide: a new board may be slower
        rows = [featurize(a) for a in table.archs]
        self.feature_names = sorted({n for r in rows for n in r})
        x = feature_matrix(rows, self.feature_names)
        # The embedding model's error on archs it did not see widens every interval.
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(x))
        cut = int(len(x) * (1 - holdout))
        fit, check = order[:cut], order[cut:]
        self._models = []
        error_var = np.zeros(rank)
        with one_thread():
            self._fit_models(x[fit], coords[fit], x[check], coords[check], error_var, seed)
        self.embedding_error_var = error_var
        self._embedded: dict[tuple[float, ...], np.ndarray] = {}
        self.embed(rows)  # one batch now: the table's archs are the likeliest to be asked

    def _fit_models(self, x: np.ndarray, coords: np.ndarray, x_check: np.ndarray,
                    coords_check: np.ndarray, error_var: np.ndarray, seed: int) -> None:
        # Imported on first fit: scikit-learn costs every server start about a second.
        from sklearn.ensemble import HistGradientBoostingRegressor

        for j in range(self.rank):
            model = HistGradientBoostingRegressor(max_iter=300, random_state=seed)
            model.fit(x, coords[:, j])
            if len(x_check):
                error_var[j] = float(np.mean((model.predict(x_check) - coords_check[:, j]) ** 2))
            self._models.append(model)

    def embed(self, rows: Sequence[Features]) -> np.ndarray:
        """(len(rows), rank) embedding of archs given by their features."""
        keys = [tuple(float(r.get(n, 0.0)) for n in self.feature_names) for r in rows]
        known = {k: self._embedded.get(k) for k in keys}
        missing = [k for k, v in known.items() if v is None]
        if missing:
            # A search asks for one arch at a time: the models' per-call cost dominates.
            x = np.asarray(missing, dtype=float)
            with one_thread():
                predicted = np.column_stack([m.predict(x) for m in self._models])
            values = dict(zip(missing, predicted))
            known.update(values)
            if len(self._embedded) + len(missing) > EMBEDDING_CACHE:
                self._embedded = {}  # a new dict: a reader of the old one is not disturbed
            self._embedded.update(values)
        return np.asarray([known[k] for k in keys]).reshape(len(keys), self.rank)


class TransferFit:
    """One device's posterior over (intercept, weights) from its points (embedding, log ms)."""

    def __init__(self, basis: TransferBasis, embedding: np.ndarray,
                 latency_ms: Sequence[float]) -> None:
        y = np.log(np.asarray(latency_ms, dtype=float))
        x = self._design(embedding)
        self.basis = basis
        m0 = np.concatenate([[basis.intercept_mean], basis.weight_mean])
        s0 = np.zeros((basis.rank + 1, basis.rank + 1))
        s0[0, 0], s0[1:, 1:] = basis.intercept_var, basis.weight_cov
        self.noise = self._evidence_noise(x, y, m0, s0)
        s0_inv = np.linalg.inv(s0)
        precision = s0_inv + x.T @ x / self.noise**2
        self.cov = np.linalg.inv(precision)
        self.mean = self.cov @ (s0_inv @ m0 + x.T @ y / self.noise**2)
        self.n_points = len(y)

    @staticmethod
    def _design(embedding: np.ndarray) -> np.ndarray:
        return np.hstack([np.ones((len(embedding), 1)), embedding])

    @staticmethod
    def _evidence_noise(x: np.ndarray, y: np.ndarray, m0: np.ndarray, s0: np.ndarray) -> float:
        """The noise level of NOISE_GRID under which the points are most likely (type-II ML)."""
        centred, prior_part = y - x @ m0, x @ s0 @ x.T
        best, best_ll = NOISE_GRID[0], -math.inf
        for noise in NOISE_GRID:
            cov = prior_part + noise**2 * np.eye(len(y))
            sign, logdet = np.linalg.slogdet(cov)
            ll = -0.5 * (logdet + centred @ np.linalg.solve(cov, centred))
            if sign > 0 and ll > best_ll:
                best, best_ll = noise, ll
        return best

    def predict_log(self, embedding: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of log latency (ms) for archs with this embedding."""
        x = self._design(embedding)
        mean = x @ self.mean
        weights2 = self.mean[1:] ** 2 + np.diag(self.cov)[1:]
        var = (self.noise**2 + np.einsum("ij,jk,ik->i", x, self.cov, x)
               + float(weights2 @ self.basis.embedding_error_var))
        return mean, np.sqrt(var)

    def predict_ms(self, embedding: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Median, 10th and 90th percentile latency (ms)."""
        mean, sd = self.predict_log(embedding)
        return np.exp(mean), np.exp(mean - Z90 * sd), np.exp(mean + Z90 * sd)


TRANSFER_FEATURE = "transfer_log_ms"


def with_transfer(rows: Sequence[Features], log_ms: Sequence[float]) -> list[dict[str, float]]:
    """Feature rows with the transfer's log-latency prediction added (the stacked model's)."""
    return [{**r, TRANSFER_FEATURE: float(t)} for r, t in zip(rows, log_ms)]


def stacked_model(new_model: Callable[..., Any], fit: TransferFit, embedding: np.ndarray,
                  rows: Sequence[Features], latency_ms: Sequence[float], **model_kw: Any) -> Any:
    """A device's own model (predictor.LatencyPredictor via `new_model`) fitted on its points
    with the transfer fit's prediction for each as one more feature."""
    model = new_model(**{**model_kw, "min_points": 1})
    transferred = np.log(fit.predict_ms(embedding)[0])
    for row, latency in zip(with_transfer(rows, transferred), latency_ms):
        model.add(row, float(latency))
    model.fit()
    return model
