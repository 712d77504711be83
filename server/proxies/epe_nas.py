"""EPE-NAS (Lopes et al., ICANN 2021): per-class correlations of input-Jacobians."""

from __future__ import annotations

import math

import numpy as np

from edgescore.server.proxies.base import Proxy, ProxyInput
from edgescore.server.proxies.jacob_cov import K, check_finite
from edgescore.server.proxies.passes import JACOBIAN, JacobianCorrelations

MANY_CLASSES = 100  # above this the paper's rule A replaces rule B


def epe_nas_score(corr: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """s_c = sum(log(|C_c| + k)) over the correlation block C_c of each class present;
    up to 100 classes: sum_c |s_c|; above: s_c /= n_c, then sum_{c,c'} |s_c - s_c'| / classes."""
    check_finite("epe_nas", corr)
    many = num_classes > MANY_CLASSES
    scores = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        if many and len(rows) == 1:
            # The reference's len() of a one-sample class's 0-d correlation raises, and its
            # `except: continue` drops the class; only rule A calls len().
            continue
        s = float(np.sum(np.log(np.abs(corr[np.ix_(rows, rows)]) + K)))
        scores.append(s / len(rows) if many else s)
    if not many:
        return math.fsum(abs(s) for s in scores)
    if not scores:
        return 0.0
    return math.fsum(abs(a - b) for a in scores for b in scores) / len(scores)


def compute(inp: ProxyInput) -> float:
    result: JacobianCorrelations = inp.shared
    return epe_nas_score(result.corr, result.labels, inp.arch.num_classes)


PROXY = Proxy(
    name="epe_nas",
    compute=compute,
    unit="score",
    transform="none",
    description="From the input-Jacobians J_i of one batch of real images with labels (as "
                "jacob_cov; network freshly initialised, BN in train mode): for each class c "
                "present, C_c = correlation matrix of its samples' J_i and "
                "s_c = sum of log(|C_c| + 1e-5); up to 100 classes value = sum of |s_c|, above "
                "100 (paper's rule) s_c is divided by the class's sample count and value = "
                "sum over class pairs of |s_c - s_c'| / number of classes.",
    reference="Lopes, Alirezazadeh & Alexandre, 'EPE-NAS: Efficient Performance Estimation "
              "Without Training for Neural Architecture Search', ICANN 2021; VascoLopes/EPE-NAS "
              "search.py (eval_score_perclass).",
    needs_data=True,
    needs_labels=True,
    batch_size=64,
    data_kind="cifar10",
    shared_pass=JACOBIAN,
)
