"""The few-label ranker, fitted on N labelled archs (proxy values and, on NB201, GRAF-style graph
features) and predicting the accuracy of the rest.

Two models, blended:
- gradient boosting on every feature, plus two label-free aggregates of the proxies (the default
  `log_rank` members' mean log-quantile and the mean quantile of all proxies): trees cannot build
  a sum of many columns from a hundred rows, so the sums are handed to them;
- a linear pairwise ranker (logistic regression on the feature differences of every labelled
  pair, RankNet's linear case) over the proxies' quantiles, their logs and the `log_rank` term: a
  weighted rank aggregation whose weights the labels choose, which few labels fit well.
Quantiles are each value's position among the labelled archs' values, so the ranker needs no
population beyond its labels. The boosted model's weight grows with the labels, N / (N + 100):
with 20 labels the linear ranker carries the blend, with 400 the trees do. Graph features alone
(no proxies) leave only the boosted model.

The boosted model learns the accuracy *rank* (mid-ranks scaled into (0, 1)), not the accuracy:
NB201's accuracies have a long tail of near-chance cells that squared error would spend its few
labels on, and only the order matters to a ranking. A prediction is turned back into accuracy
units through the labelled accuracies' quantiles, so the served value reads as a predicted
accuracy and keeps the predicted order.

Settings were chosen on draws of the CIFAR-10 evaluation with seeds 100-104 (the reported figures
use seeds 0-9; docs/evaluation.md, "Few-label ranking"). Against boosting alone the blend gained
Kendall tau 0.08 at N = 20, 0.04 at 50, 0.02 at 100 and 0.002 at 400; a Gaussian process
(RBF on the quantiles) and extra one-hot edge encodings did not help. scikit-learn's
GradientBoostingRegressor beat HistGradientBoostingRegressor at N = 20 (its binning and leaf
constraints bite on 20 rows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from edgescore.server.proxies._aggregate import LABEL_FREE_MEMBERS
from edgescore.server.scoring.graph_features import feature_names, nb201_graph_features
from edgescore.server.scoring.ranks import rankdata

if TYPE_CHECKING:
    from sklearn.ensemble import GradientBoostingRegressor

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
PAIRWISE_C = 0.05  # strong L2: a hundred labels give thousands of correlated pairs
TREES_HALF_WEIGHT_AT = 100  # labels at which the two models weigh the same
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


def _mid_quantile(ordered: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each value's mid-quantile among the sorted `ordered`, in (0, 1) (ties share one)."""
    below = np.searchsorted(ordered, values, "left")
    not_above = np.searchsorted(ordered, values, "right")
    return (below + not_above + 1) / (2 * len(ordered) + 2)


class _Quantiles:
    """Each proxy value's mid-quantile among the labelled archs' values, in (0, 1); a failed
    value (NaN) sits below every real one."""

    def __init__(self, labelled: np.ndarray) -> None:
        self._sorted = np.sort(_prepared(labelled), axis=0)

    def __call__(self, values: np.ndarray) -> np.ndarray:
        values = _prepared(values)
        columns = [_mid_quantile(self._sorted[:, k], values[:, k]) for k in range(values.shape[1])]
        return np.column_stack(columns) if columns else np.empty((len(values), 0))


class _Aggregates:
    """The label-free features derived from the proxy columns of a feature matrix."""

    def __init__(self, labelled: np.ndarray, names: Sequence[str]) -> None:
        graph = set(feature_names())
        self.proxy_columns = [k for k, name in enumerate(names) if name not in graph]
        members = [i for i, k in enumerate(self.proxy_columns) if names[k] in LABEL_FREE_MEMBERS]
        self._member_positions = members or list(range(len(self.proxy_columns)))
        self._quantiles = _Quantiles(labelled[:, self.proxy_columns])

    def features(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The trees' features and the linear ranker's (None without proxy columns), from one
        pass over the quantiles."""
        if not self.proxy_columns:
            return features, None
        q = self._quantiles(features[:, self.proxy_columns])
        log_rank = np.log(q[:, self._member_positions]).mean(axis=1)
        return (np.column_stack([features, log_rank, q.mean(axis=1)]),
                np.column_stack([q, np.log(q), log_rank]))


class _PairwiseLinear:
    """Logistic regression on standardised feature differences of the labelled pairs."""

    def __init__(self, features: np.ndarray, accuracies: np.ndarray) -> None:
        self._mean = features.mean(axis=0)
        self._scale = features.std(axis=0) + 1e-9
        z = self._standardised(features)
        i, j = np.triu_indices(len(accuracies), 1)
        keep = accuracies[i] != accuracies[j]
        i, j = i[keep], j[keep]
        diff = z[i] - z[j]
        better = (accuracies[i] > accuracies[j]).astype(int)
        from sklearn.linear_model import LogisticRegression  # see LearnedRanker.fit

        model = LogisticRegression(C=PAIRWISE_C, max_iter=2000, fit_intercept=False)
        model.fit(np.vstack([diff, -diff]), np.concatenate([better, 1 - better]))
        self._weights = model.coef_[0]
        self._train_scores = np.sort(z @ self._weights)

    def _standardised(self, features: np.ndarray) -> np.ndarray:
        return (features - self._mean) / self._scale

    def quantile(self, features: np.ndarray) -> np.ndarray:
        """The score's mid-quantile among the labelled archs' scores, in (0, 1)."""
        return _mid_quantile(self._train_scores, self._standardised(features) @ self._weights)


class LearnedRanker:
    """A fitted ranker: `predict` gives predicted accuracies, higher is better."""

    def __init__(self, trees: GradientBoostingRegressor, linear: _PairwiseLinear | None,
                 aggregates: _Aggregates, accuracies: np.ndarray) -> None:
        self._trees, self._linear, self._aggregates = trees, linear, aggregates
        self._accuracies = np.sort(accuracies)
        n = len(accuracies)
        self._tree_weight = 1.0 if linear is None else n / (n + TREES_HALF_WEIGHT_AT)

    @classmethod
    def fit(cls, features: np.ndarray, accuracies: Sequence[float],
            names: Sequence[str] = ()) -> LearnedRanker:
        """Fit on labelled rows; `names` are the columns' names (feature_matrix's), without
        which every column counts as a proxy."""
        # Imported on first fit: scikit-learn costs every server start about a second.
        from sklearn.ensemble import GradientBoostingRegressor

        y = np.asarray(accuracies, dtype=float)
        if len(y) < MIN_LABELS:
            raise LearnedError(f"{len(y)} labelled archs; the ranker needs at least {MIN_LABELS}")
        if np.all(y == y[0]):
            raise LearnedError("every labelled arch has the same accuracy: nothing to rank by")
        names = list(names) or [f"x{k}" for k in range(features.shape[1])]
        aggregates = _Aggregates(features, names)
        target = (rankdata(y) - 0.5) / len(y)
        tree_x, linear_x = aggregates.features(features)
        trees = GradientBoostingRegressor(**MODEL_PARAMS)
        trees.fit(_prepared(tree_x), target)
        linear = None if linear_x is None else _PairwiseLinear(linear_x, y)
        return cls(trees, linear, aggregates, y)

    def predict_rank(self, features: np.ndarray) -> np.ndarray:
        """Predicted accuracy quantile among the labelled archs, about (0, 1)."""
        tree_x, linear_x = self._aggregates.features(features)
        trees = np.clip(self._trees.predict(_prepared(tree_x)), 0.0, 1.0)
        if self._linear is None or linear_x is None:
            return trees
        linear = self._linear.quantile(linear_x)
        return self._tree_weight * trees + (1.0 - self._tree_weight) * linear

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predicted accuracy: the labelled accuracies' quantile at the predicted rank."""
        return np.quantile(self._accuracies, self.predict_rank(features))
