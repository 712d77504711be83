"""Regularised SWAP-Score (Peng et al., ICLR 2024): SWAP times a Gaussian of the model size."""

from __future__ import annotations

import math

from edgescore.server.errors import InvalidArgument
from edgescore.server.proxies import _swap
from edgescore.server.proxies._swap import INIT_CHOICES, kilo_params, mean_swap
from edgescore.server.proxies.base import Proxy, ProxyInput

# mu and sigma in the reference's unit, thousands of parameters (count_parameters / 1e3):
# f = exp(-(params_k - mu)^2 / sigma). The defaults centre the factor on NB201's largest
# networks (~1.5 M parameters) with a broad width; the paper's own per-space values could not be
# retrieved (see docs/proxies.md), so requests that reproduce a figure should set both.
DEFAULT_MU = "1500"
DEFAULT_SIGMA = "1500000"


def _positive_float(inp: ProxyInput, key: str, default: str, positive: bool) -> float:
    text = inp.settings.extra.get(key, default)
    try:
        value = float(text)
    except ValueError:
        raise InvalidArgument(f"settings.extra[{key}]", f"not a number: {text!r}") from None
    if not math.isfinite(value) or (positive and value <= 0):
        raise InvalidArgument(f"settings.extra[{key}]",
                              f"must be a finite{' positive' if positive else ''} number")
    return value


def regular_factor(kilo: float, mu: float, sigma: float) -> float:
    return math.exp(-((kilo - mu) ** 2) / sigma)


def compute(inp: ProxyInput) -> float:
    mu = _positive_float(inp, "mu", DEFAULT_MU, positive=False)
    sigma = _positive_float(inp, "sigma", DEFAULT_SIGMA, positive=True)
    # Checked before the forwards: a bad setting costs nothing.
    factor = regular_factor(kilo_params(inp.network), mu, sigma)
    return mean_swap(inp, "swap_reg") * factor


PROXY = Proxy(
    name="swap_reg",
    compute=compute,
    unit="patterns",
    transform="none",
    description="Regularised SWAP-Score: the swap value (same batch, init, hooks and extra "
                "inits) times exp(-(P - mu)^2 / sigma), P = parameters in thousands (names "
                "containing 'auxiliary' excluded), mu and sigma from extra mu, sigma (same unit; "
                f"defaults {DEFAULT_MU} and {DEFAULT_SIGMA}, not the paper's, which we could not "
                "retrieve). Far from mu the factor underflows to 0 and so does the value.",
    reference="Peng et al., 'SWAP-NAS: Sample-Wise Activation Patterns for Ultra-fast NAS', "
              "ICLR 2024, Sec. 3.3; pym1024/SWAP src/metrics/swap.py (cal_regular_factor).",
    **_swap.PROTOCOL,
    extra_choices={"inits": INIT_CHOICES, "mu": (), "sigma": ()},
)
