"""How a search draws and mutates specs of a space, on the client: each space's grammar
(edgescore.grammar, torch-free) samples and mutates. A `--within` list restricts any space to the
archs it names (e.g. a benchmark's split).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Protocol

from edgescore.grammar import GRAMMARS


class Sampler(Protocol):
    def sample(self, rng: random.Random) -> Any: ...

    def mutate(self, spec: Any, rng: random.Random) -> Any: ...


class WithinList:
    """Only the archs of `archs`: samples draw from it, a mutation is redrawn until it lands in
    it (up to `tries`, then a fresh sample), as searches on a benchmark split do."""

    def __init__(self, base: Sampler, archs: Sequence[Any], key: Any = str,
                 tries: int = 100) -> None:
        if not archs:
            raise ValueError("the list of allowed archs is empty")
        self.base, self.archs, self.key, self.tries = base, list(archs), key, tries
        self._allowed = {key(a) for a in archs}

    def sample(self, rng: random.Random) -> Any:
        return rng.choice(self.archs)

    def mutate(self, spec: Any, rng: random.Random) -> Any:
        for _ in range(self.tries):
            child = self.base.mutate(spec, rng)
            if self.key(child) in self._allowed:
                return child
        return self.sample(rng)


def sampler_for(space: str) -> Sampler:
    """The sampler of a space: its grammar (ValueError for a space without one, e.g. onnx)."""
    grammar = GRAMMARS.get(space)
    if grammar is None:
        raise ValueError(f"no sampler for space '{space}'")
    return grammar
