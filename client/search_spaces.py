"""How a search draws and mutates specs of a space, on the client (no torch for the string
spaces).

NB201 and NATS-SSS are sampled and mutated here from their grammar; for nb101 / macro / vit the
server's space modules (`edgescore[server]`) know their grammar and are used when installed.
A `--within` list restricts any space to the archs it names (e.g. a benchmark's split).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Protocol

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NB201_EDGES = 6
NATS_SSS_CHANNELS = tuple(range(8, 65, 8))


class Sampler(Protocol):
    def sample(self, rng: random.Random) -> Any: ...

    def mutate(self, spec: Any, rng: random.Random) -> Any: ...


def nb201_string(ops: Sequence[str]) -> str:
    """The cell string of six edge ops in string order (1<-0 | 2<-0, 2<-1 | 3<-0, 3<-1, 3<-2)."""
    return (f"|{ops[0]}~0|+|{ops[1]}~0|{ops[2]}~1|+"
            f"|{ops[3]}~0|{ops[4]}~1|{ops[5]}~2|")


def nb201_ops(spec: str) -> list[str]:
    return [token.split("~")[0] for token in spec.replace("+", "").split("|") if token]


class Nb201Sampler:
    """Uniform cells; a mutation changes one edge's op (NAS-Bench-201's REA)."""

    def sample(self, rng: random.Random) -> str:
        return nb201_string([rng.choice(NB201_OPS) for _ in range(NB201_EDGES)])

    def mutate(self, spec: str, rng: random.Random) -> str:
        ops = nb201_ops(spec)
        edge = rng.randrange(NB201_EDGES)
        ops[edge] = rng.choice([op for op in NB201_OPS if op != ops[edge]])
        return nb201_string(ops)


class NatsSssSampler:
    """Uniform channel strings; a mutation redraws one layer's width (NATS-Bench's REA)."""

    def sample(self, rng: random.Random) -> str:
        return ":".join(str(rng.choice(NATS_SSS_CHANNELS)) for _ in range(5))

    def mutate(self, spec: str, rng: random.Random) -> str:
        channels = [int(c) for c in spec.split(":")]
        layer = rng.randrange(len(channels))
        channels[layer] = rng.choice([c for c in NATS_SSS_CHANNELS if c != channels[layer]])
        return ":".join(map(str, channels))


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
    """The sampler of a space: built in for nb201 / nats_sss, else the server's space module."""
    if space == "nb201":
        return Nb201Sampler()
    if space == "nats_sss":
        return NatsSssSampler()
    try:
        from edgescore.server.spaces import registry
    except ImportError as exc:
        raise ValueError(f"searching the {space} space needs its grammar from the server "
                         f"extra: pip install 'edgescore[server]' ({exc})") from None
    found = registry.SPACES.get(space)
    if found is None or not hasattr(found, "sample"):
        raise ValueError(f"no sampler for space '{space}'")
    return found  # type: ignore[return-value]
