"""What a proxy declares, the settings it runs under, and what the engine hands it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
from torch import nn

from edgescore.server.proxies import data
from edgescore.server.spaces.base import ParsedArch

DATA_KINDS = ("synthetic", "cifar10", "registered")
INITS = ("default", "kaiming", "xavier", "normal")
# extra["network"] of the zero-cost-nas proxies: they default to the model that repository scored
# (a space's variant of that name, e.g. nb201's; spaces without one build their own network).
ZERO_COST_NAS_NETWORKS = ("zero_cost_nas", "benchmark")
DEFAULT_SEED = 0


@dataclass(frozen=True)
class ResolvedSettings:
    """The settings one proxy actually ran with: every field is set (defaults filled in)."""

    batch_size: int
    seed: int
    init: str
    repeats: int
    data_kind: str
    dataset_id: str = ""
    # hash=False: a dict is unhashable, and the other fields identify the settings well enough.
    extra: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass
class SettingsOverride:
    """A request's settings for one proxy; None means "use the proxy's default"."""

    batch_size: Optional[int] = None
    seed: Optional[int] = None
    init: Optional[str] = None
    repeats: Optional[int] = None
    data_kind: Optional[str] = None
    dataset_id: Optional[str] = None
    extra: Optional[dict[str, str]] = None


@dataclass
class ProxyInput:
    """What a proxy's `compute` gets: a freshly initialised network in train mode on `device`."""

    network: nn.Module
    arch: ParsedArch
    settings: ResolvedSettings
    device: torch.device
    normalisation: str = data.DEFAULT_NORMALISATION
    # Filled by batch(): facts about the data (e.g. "stand_in_data") that the result must carry.
    flags: list[str] = field(default_factory=list)
    # The result of the proxy's `shared_pass` for these settings (None for proxies without one).
    shared: Any = field(default=None, repr=False)
    _batch: Optional[tuple[torch.Tensor, torch.Tensor]] = field(default=None, repr=False)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The calibration batch (x, y) on the device, made on first use: data-free proxies
        never pay for it and never get data flags."""
        if self._batch is None:
            s = self.settings
            made = data.calibration_batch(
                s.data_kind, s.batch_size, s.seed, self.arch.input_shape, self.arch.num_classes,
                normalisation=self.normalisation, dataset_id=s.dataset_id)
            self.flags.extend(made.flags)
            self._batch = (made.x.to(self.device), made.y.to(self.device))
        return self._batch


@dataclass(frozen=True)
class SharedPass:
    """An intermediate result that several proxies compute their values from (e.g. the weight
    gradients of one cross-entropy backward), computed once per request for each combination of
    seed, init, batch size, data kind, dataset and normalisation that its proxies ask for.

    `run` gets a ProxyInput like a proxy's (its `settings.extra` empty and `repeats` 1: a pass must
    not depend on one proxy's options) and returns any object; the proxies read it as
    `ProxyInput.shared` and must not change it. Flags it adds to `ProxyInput.flags` reach every
    proxy that uses the result. Same rules for randomness as `Proxy.compute`.
    `mutates_network`: as for Proxy; the copy is then made once per pass, not per proxy.
    """

    name: str
    run: Callable[[ProxyInput], Any]
    description: str
    mutates_network: bool = True


@dataclass(frozen=True)
class Proxy:
    """A training-free proxy: how to compute it, what the number means, and where it comes from.

    `compute` returns the served float (already transformed, e.g. the log for SynFlow). It must
    not draw from torch's global RNG (other requests share it): randomness comes from
    `ProxyInput.batch()` or a `torch.Generator` seeded with `settings.seed`.
    `mutates_network`: the proxy changes parameters, buffers, mode or structure of the network,
    so the engine hands it a private deep copy instead of the shared freshly-built one.
    `batch_size`/`data_kind` of a data-free proxy are fixed and reported as used.
    `shared_pass`: the engine runs that pass first (once for all proxies of a request that share
    it under the same settings) and hands its result to `compute` as `ProxyInput.shared`; if the
    pass fails, every proxy that needs it fails with the pass's reason.
    """

    name: str
    compute: Callable[[ProxyInput], float]
    unit: str
    transform: str
    description: str
    reference: str
    needs_data: bool = False
    needs_labels: bool = False
    mutates_network: bool = False
    batch_size: int = 1
    data_kind: str = "synthetic"
    init: str = "default"
    seed: int = DEFAULT_SEED
    repeats: int = 1
    # Per-channel mean/std of real images, as the proxy's reference loader used (see data.py).
    normalisation: str = data.DEFAULT_NORMALISATION
    # `extra` settings the proxy understands: key -> allowed values (empty: any string). Other keys
    # and values are rejected before anything runs; an absent key means the first allowed value.
    extra_choices: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    shared_pass: Optional[SharedPass] = None


@dataclass(frozen=True)
class Composite:
    """A proxy computed from other proxies' values instead of from a network.

    Each member's value becomes its percentile in the space's reference population (members on
    incomparable scales then weigh alike) and `combine` joins those percentiles into the served
    value, so a composite is served only where reference populations are. A request picks the
    members with `extra[members_key]` (default `default_members`); its other settings apply to
    every member, and an extra key goes to the members that know it. A `fitted` composite
    (`learned`) is served where the operator registered labelled archs of the space instead.
    """

    name: str
    combine: Callable[[Sequence[float]], float]
    unit: str
    transform: str
    description: str
    reference: str
    default_members: tuple[str, ...]
    max_members: int = 8
    members_key: str = "proxies"
    # A model fitted on the operator's labelled archs (scoring/label_sets.py) serves the value
    # from the members' raw values instead of `combine`; it has no reference population.
    fitted: bool = False
