"""What every space's grammar offers, and the validated, canonical form of one arch."""

from __future__ import annotations

import hashlib
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, TypeVar

from edgescore.grammar.checks import canonical_json, check_classes
from edgescore.grammar.errors import SpecError

T = TypeVar("T")


@dataclass(frozen=True)
class ParsedArch:
    """A validated architecture in canonical form; `payload` is the space's own parsed value."""

    space: str
    canonical: str
    num_classes: int
    input_resolution: int
    payload: Any = None
    flags: tuple[str, ...] = field(default_factory=tuple)
    # The spec as the request spelled it (normalised), when canonicalisation changed it: a
    # latency job carries it, since a replay agent looks a benchmark's own spelling up.
    spelled: str = ""
    # The canonical form of the network the export builds, when it is a smaller one (NB201: the
    # live cell, dead edges dropped): spellings that export alike share one export.
    exports_as: str = ""

    @property
    def as_spelled(self) -> str:
        return self.spelled or self.canonical

    @property
    def export_hash(self) -> str:
        return arch_hash(self.space, self.exports_as or self.canonical)

    @property
    def arch_hash(self) -> str:
        return arch_hash(self.space, self.canonical)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one input image."""
        return (3, self.input_resolution, self.input_resolution)


def arch_hash(space: str, canonical: str) -> str:
    return hashlib.sha256(f"{space}:{canonical}".encode()).hexdigest()


def other_choice(rng: random.Random, choices: Sequence[Any], current: Any) -> Any:
    """A random choice other than `current`: a mutation's new value always differs."""
    return rng.choice([choice for choice in choices if choice != current])


def pick_change(rng: random.Random, parent: T, candidates: list[T],
                check: Callable[[T], T]) -> Optional[T]:
    """A random one of `candidates`, as `check` returns it, that `check` accepts (SpecError:
    rejected) and that differs from `parent`; None when none does."""
    rng.shuffle(candidates)
    for candidate in candidates:
        try:
            checked = check(candidate)
        except SpecError:
            continue
        if checked != parent:
            return checked
    return None


class Grammar(ABC):
    """A space's specs without its networks: parsing to a canonical form, sampling, mutation.
    Torch-free, so that the client and the agent use the same grammar as the server."""

    name: str
    description: str
    example: str
    fields: dict[str, str]
    default_num_classes: int
    default_input_resolution: int

    @abstractmethod
    def parse(self, spec: Any, num_classes: int = 0, input_resolution: int = 0) -> ParsedArch:
        """Validate `spec`; raise SpecError naming the field and the bad token."""

    @abstractmethod
    def sample(self, rng: random.Random) -> Any:
        """A random spec of the space, in the form `parse` reads."""

    @abstractmethod
    def mutate(self, spec: Any, rng: random.Random) -> Any:
        """A spec one local change away from `spec` (SpecError when `spec` does not parse)."""

    def largest(self, num_classes: int, input_resolution: int) -> Optional[ParsedArch]:
        """The arch with the most parameters and MACs, where the space knows it in advance."""
        return None


class JsonGrammar(Grammar):
    """A space whose specs are JSON objects parsed to a payload with `to_spec()`; its canonical
    form is that spec as sorted, compact JSON. ImageNet-sized by default."""

    default_num_classes = 1000
    default_input_resolution = 224

    @abstractmethod
    def parse_payload(self, spec: Any) -> Any:
        """The validated payload of `spec` (SpecError naming the field otherwise)."""

    @abstractmethod
    def resolution_of(self, value: Any, payload: Any) -> int:
        """The input resolution `value` asks for (0: the default), checked against `payload`."""

    def parse(self, spec: Any, num_classes: int = 0, input_resolution: int = 0) -> ParsedArch:
        payload = self.parse_payload(spec)
        return ParsedArch(
            space=self.name,
            canonical=canonical_json(payload.to_spec()),
            num_classes=check_classes(num_classes, self.default_num_classes),
            input_resolution=self.resolution_of(input_resolution, payload),
            payload=payload,
        )
