"""Transfer as the predictor bank uses it: which devices a new class borrows from, and the fitted
bases and per-class fits, cached.

Below `stack_from` points the answer is the transfer fit's; from there on a gradient-boosting
model of the class's own points that takes the transfer's prediction as one more feature
("stacked"): on FBNet the transfer alone stops improving near 100 points (its rank-6 basis), on
NB201 it is as good as the class's own model up to 500 (docs/predictor.md).

A class borrows from the space's shipped prior (HELP's public tables) and from every other
predictor of the bank for that space that has `source_min_points` measurements of its own (its
predicted latencies on the prior's archs become one more device of the table). A prior device
whose name is the class's own is left out, so a replayed HELP device is never predicted from its
own table. A basis is refitted only when the set of borrowed devices changes; a class's fit
whenever its points change.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any, Callable, Optional

import numpy as np

from edgescore.server.scoring.transfer import (
    DeviceTable,
    TransferBasis,
    TransferFit,
    shipped_prior,
    stacked_model,
    with_transfer,
)

log = logging.getLogger(__name__)
Features = Mapping[str, float]
LatencyModel = Any  # predictor.LatencyPredictor (which imports this module)


@lru_cache(maxsize=64)
def _shipped_basis(space: str, device_class: str, rank: int,
                   featurize: Callable[[str, str], Features]) -> TransferBasis:
    """The basis of the shipped prior alone: the same for every bank of the process."""
    prior = shipped_prior(space)
    assert prior is not None
    return TransferBasis(prior.without([device_class]), lambda arch: featurize(space, arch),
                         rank=rank)


class TransferBank:
    def __init__(self, featurize: Callable[[str, str], Features],
                 new_model: Callable[..., LatencyModel], *,
                 priors: Callable[[str], Optional[DeviceTable]] = shipped_prior,
                 min_points: int = 5, source_min_points: int = 100, rank: int = 6,
                 stack_from: int = 200, stack_every: int = 25,
                 stack_kw: Optional[Mapping[str, Any]] = None) -> None:
        self._featurize, self._priors, self._new_model = featurize, priors, new_model
        self.min_points, self.source_min_points, self.rank = min_points, source_min_points, rank
        self.stack_from, self.stack_every = stack_from, stack_every
        self._stack_kw = dict(stack_kw or {})
        self._bases: dict[tuple, TransferBasis] = {}
        self._fits: dict[int, tuple[int, tuple, TransferFit]] = {}  # id(predictor) -> fit
        self._stacked: dict[int, tuple[int, LatencyModel]] = {}  # id(predictor) -> model
        self._lock = threading.Lock()

    def has_prior(self, space: str) -> bool:
        return self._priors(space) is not None

    def predict_many(self, space: str, device_class: str, target: Any,
                     sources: Sequence[tuple[str, Any]], rows: Sequence[Features]
                     ) -> Optional[list[tuple[float, float, float]]]:
        """(median, 10th, 90th percentile) ms of each row for the `target` predictor, or None
        when it has fewer than `min_points` points or the space has no prior. `sources`: the
        bank's other (name, predictor) pairs of the space."""
        x, y, changes = target.points()
        if len(y) < self.min_points:
            return None
        prior = self._priors(space)
        if prior is None:
            return None
        donors = [(name, p) for name, p in sources
                  if p is not target and p.n_points >= self.source_min_points]
        key = (space, device_class, tuple(sorted(name for name, _ in donors)))
        with self._lock:
            basis = self._bases.get(key)
            if basis is None:
                basis = self._fit_basis(space, device_class, prior, donors)
                self._bases[key] = basis
            cached = self._fits.get(id(target))
            if cached and cached[:2] == (changes, key):
                fit = cached[2]
            else:
                fit = TransferFit(basis, basis.embed(x), y)
                self._fits[id(target)] = (changes, key, fit)
            stacked = (self._stacked_model(target, fit, basis, x, y, changes)
                       if len(y) >= self.stack_from else None)
        median, low, high = fit.predict_ms(basis.embed(rows))
        if stacked is not None:
            answers = stacked.predict_many(with_transfer(rows, np.log(median)))
            if answers is not None:
                return [(p.median_ms, p.low_ms, p.high_ms) for p in answers]
        return [(float(m), float(lo), float(hi)) for m, lo, hi in zip(median, low, high)]

    def _stacked_model(self, target: Any, fit: TransferFit, basis: TransferBasis,
                       x: Sequence[Features], y: Sequence[float], changes: int) -> LatencyModel:
        """The class's own model with the transfer's log prediction as a feature, refitted
        after `stack_every` changes."""
        cached = self._stacked.get(id(target))
        if cached is not None and changes - cached[0] < self.stack_every:
            return cached[1]
        model = stacked_model(self._new_model, fit, basis.embed(x), x, y, **self._stack_kw)
        self._stacked[id(target)] = (changes, model)
        return model

    def _fit_basis(self, space: str, device_class: str, prior: DeviceTable,
                   donors: Sequence[tuple[str, Any]]) -> TransferBasis:
        if not donors and self._priors is shipped_prior:
            return _shipped_basis(space, device_class, self.rank, self._featurize)
        features = {a: self._featurize(space, a) for a in prior.archs}
        table = prior.without([device_class])
        columns = {}
        for name, predictor in donors:
            predicted = predictor.predict_many([features[a] for a in prior.archs])
            if predicted is not None:
                columns[f"server:{name}"] = np.asarray([p.median_ms for p in predicted])
        table = table.with_devices(columns)
        log.info("fitting the %s latency transfer basis for %s on %d devices (%d of this "
                 "server's)", space, device_class, len(table.devices), len(columns))
        return TransferBasis(table, lambda arch: features[arch], rank=self.rank)
