"""One forward of a batch with hooks that record what proxies read (ReLU codes, feature maps),
removed afterwards whatever happens."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

import torch
from torch import nn


def hooked_forward(network: nn.Module, x: torch.Tensor, modules: Iterable[nn.Module],
                   hook: Callable, *, pre: bool = False, grad: bool = False) -> torch.Tensor:
    """network(x) with `hook` registered on every module of `modules` (a forward hook, or a
    forward pre-hook with `pre`); without autograd unless `grad`. Returns the output."""
    handles = [m.register_forward_pre_hook(hook) if pre else m.register_forward_hook(hook)
               for m in modules]
    try:
        with contextlib.nullcontext() if grad else torch.no_grad():
            return network(x)
    finally:
        for handle in handles:
            handle.remove()
