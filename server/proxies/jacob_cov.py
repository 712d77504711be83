"""jacob_cov: Mellor et al.'s v1 score on the correlations of per-sample input-Jacobians."""

from __future__ import annotations

import numpy as np

from edgescore.server.errors import NumericalFailure
from edgescore.server.proxies.base import ZERO_COST_NAS_NETWORKS, Proxy, ProxyInput
from edgescore.server.proxies.passes import JACOBIAN, JacobianCorrelations

K = 1e-5  # the reference's shift, keeping log and 1/v finite for (near-)zero eigenvalues


def check_finite(name: str, corr: np.ndarray) -> None:
    if not np.isfinite(corr).all():
        raise NumericalFailure(
            f"{name}: Jacobian correlations are undefined (NaN): some sample's input-Jacobian is "
            "constant, e.g. the output does not depend on the input")


def jacob_cov_score(corr: np.ndarray) -> float:
    """-sum(log(v + k) + 1/(v + k)) over the eigenvalues v of the correlation matrix."""
    check_finite("jacob_cov", corr)
    try:
        # The matrix is symmetric: eigvalsh gives the reference's np.linalg.eig values (to
        # rounding) but always real, where eig may return spurious complex pairs.
        v = np.linalg.eigvalsh(corr)
    except np.linalg.LinAlgError as exc:
        raise NumericalFailure(f"jacob_cov: eigendecomposition failed ({exc})") from exc
    shifted = v + K
    if (shifted <= 0).any():
        raise NumericalFailure(f"jacob_cov: eigenvalue {v.min():.3g} below -k, log undefined")
    return float(-np.sum(np.log(shifted) + 1.0 / shifted))


def compute(inp: ProxyInput) -> float:
    result: JacobianCorrelations = inp.shared
    return jacob_cov_score(result.corr)


PROXY = Proxy(
    name="jacob_cov",
    compute=compute,
    unit="score",
    transform="none",
    description="For one batch of real images (network freshly initialised, BN in train mode), "
                "J_i = d(sum of every output of the batch)/d(input i), flattened; C = correlation "
                "matrix of the J_i (np.corrcoef); value = -sum over eigenvalues v of C of "
                "log(v + k) + 1/(v + k), k = 1e-5. Labels unused.",
    reference="Mellor et al., 'Neural Architecture Search without Training', arXiv v1 (2020); "
              "protocol and code of Abdelfattah et al., ICLR 2021, SamsungLabs/zero-cost-nas "
              "foresight/pruners/measures/jacob_cov.py.",
    needs_data=True,
    batch_size=64,
    data_kind="cifar10",
    shared_pass=JACOBIAN,
    extra_choices={"network": ZERO_COST_NAS_NETWORKS},
)
