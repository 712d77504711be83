"""The few-label ranker: gradient boosting fitted on N labelled archs (proxy values and, on
NB201, GRAF-style graph features), predicting the accuracy of the rest.

The model learns the accuracy *rank* (mid-ranks scaled into (0, 1)), not the accuracy itself:
NB201's accuracies have a long tail of near-chance cells that squared error would spend its few
labels on, and only the order matters to a ranking. A prediction is turned back into accuracy
units through the labelled accuracies' quantiles, so the served value reads as a predicted
accuracy and keeps the predicted order.

Hyper-parameters were chosen on draws of the 1,000-arch CIFAR-10 evaluation with seeds 100-102
(the reported figures use seeds 0-9): scikit-learn's GradientBoostingRegressor beat
HistGradientBoostingRegressor at N = 20 (Kendall tau 0.66 against 0.62, its binning and leaf
constraints bite on 20 rows), tied at N = 100 and 400, and a ridge on quantile-transformed
features, alone or averaged in, lowered tau at every N (docs/evaluation.md, "Few-label ranking").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.ensemble import GradientBoostingRegressor

from edgescore.server.scoring.graph_features import feature_names, nb201_graph_features
from edgescore.server.scoring.ranks import rankdata

GRAPH_SPACES = frozenset({"nb201"})  # spaces with graph features; elsewhere proxies alone
MIN_LABELS = 5  # fewer cannot rank anything worth serving
# Small trees, shrinkage and row/column subsampling: stable from 20 labels up to 400.
MODEL_PARAMS = {
    "n_estimators": 300,
    "learning_rate": 0.05,
    "max_depth": 3,
    "min_samples_leaf": 2,
    "subsample": 0.8,
    "max_features": 0.3,
    "random_state": 0,
}
# A failed proxy (NaN: e.g. a degenerate cell's NASWOT) becomes a value below every real one:
# failures go with the worst cells, and the trees (which work in float32) can split them off.
MISSING = float(np.finfo(np.float32).min) / 2


class LearnedError(ValueError):
    """Labels the ranker cannot be fitted on (too few, or constant)."""


def feature_matrix(archs: Sequence[str], space: str,
                   proxies: Mapping[str, Sequence[float | None]],
                   graph: bool = True) -> tuple[np.ndarray, list[str]]:
    """Rows of features for `archs`: the proxy columns in the order given, then the graph
    features where the space has them and `graph` is set. Missing proxy values are NaN."""
    columns: list[np.ndarray] = []
    names: list[str] = []
    for name, values in proxies.items():
        columns.append(np.array([np.nan if v is None else float(v) for v in values], dtype=float))
        names.append(name)
    if graph and space in GRAPH_SPACES:
        graph_names = feature_names()
        rows = [nb201_graph_features(arch) for arch in archs]
        columns.extend(np.array([row[n] for row in rows], dtype=float) for n in graph_names)
        names.extend(graph_names)
    if not columns:
        raise LearnedError(f"no features: give proxies (space {space!r} has no graph features)")
    return np.column_stack(columns), names


def _prepared(features: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(features), MISSING, features)


class LearnedRanker:
    """A fitted ranker: `predict` gives predicted accuracies, higher is better."""

    def __init__(self, model: GradientBoostingRegressor, accuracies: np.ndarray) -> None:
        self._model = model
        self._accuracies = np.sort(accuracies)

    @classmethod
    def fit(cls, features: np.ndarray, accuracies: Sequence[float]) -> LearnedRanker:
        y = np.asarray(accuracies, dtype=float)
        if len(y) < MIN_LABELS:
            raise LearnedError(f"{len(y)} labelled archs; the ranker needs at least {MIN_LABELS}")
        if np.all(y == y[0]):
            raise LearnedError("every labelled arch has the same accuracy: nothing to rank by")
        target = (rankdata(y) - 0.5) / len(y)
        model = GradientBoostingRegressor(**MODEL_PARAMS)
        model.fit(_prepared(features), target)
        return cls(model, y)

    def predict_rank(self, features: np.ndarray) -> np.ndarray:
        """Predicted accuracy quantile among the labelled archs, about (0, 1)."""
        return np.clip(self._model.predict(_prepared(features)), 0.0, 1.0)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predicted accuracy: the labelled accuracies' quantile at the predicted rank."""
        return np.quantile(self._accuracies, self.predict_rank(features))
