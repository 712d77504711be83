"""The one interface every search space implements: its archs parsed (for most spaces by a
grammar of edgescore.grammar) and built as torch networks."""

from __future__ import annotations

import copy
import random
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Optional

from torch import nn

from edgescore.grammar.base import Grammar, ParsedArch
from edgescore.grammar.errors import SpecError
from edgescore.server.errors import InvalidArgument


@contextmanager
def spec_errors_as_invalid_argument() -> Iterator[None]:
    """The grammar's SpecError as the server's InvalidArgument: same field, same message."""
    try:
        yield
    except SpecError as exc:
        raise InvalidArgument(exc.field, exc.detail) from None


class SearchSpace(ABC):
    """Parses a space's specs to ParsedArch and builds their torch networks; the optional hooks
    at the end have defaults that mean "nothing special about this space"."""

    name: str
    description: str
    example: str
    fields: dict[str, str]
    default_num_classes: int
    default_input_resolution: int
    # Names of the networks `build` can make for one arch (first: the space's own). A proxy whose
    # reference used another model of the space asks for it by name (engine: extra "network").
    network_variants: tuple[str, ...] = ("default",)
    # The torch-free grammar that parses, samples and mutates the space's specs; None for a space
    # that parses on its own and cannot be sampled (ONNX uploads).
    grammar: Optional[Grammar] = None
    # True where the client supplies the network itself (ONNX): a proxy that fails on it with
    # no reason of its own failed on the client's graph (FAILED_PRECONDITION), not on our code.
    networks_uploaded: bool = False

    @abstractmethod
    def parse(self, spec: Any, num_classes: int = 0, input_resolution: int = 0) -> ParsedArch:
        """Validate `spec`; raise errors.InvalidArgument naming the field and the bad token."""

    @abstractmethod
    def build(self, arch: ParsedArch, variant: str = "") -> nn.Module:
        """The full network, as the space's reference code builds it (proxies run on this);
        `variant` one of `network_variants` ("" or the first: the space's own)."""

    @abstractmethod
    def build_exportable(self, arch: ParsedArch, network: Optional[nn.Module] = None
                         ) -> nn.Module:
        """A network with the same outputs and dead parts removed (latency is measured on this):
        a copy of `network`, by default a fresh build."""

    def largest(self, num_classes: int, input_resolution: int) -> Optional[ParsedArch]:
        """The arch with the most parameters and MACs, when known: if it fits the size caps,
        every arch of that class count and resolution does."""
        return None

    def check_size(self, arch: ParsedArch, limits: Any) -> bool:
        """Check the space's own size caps (e.g. ONNX: bytes, graph nodes, initializers); False
        when it has none and the built network is measured instead."""
        return False

    def static_proxy(self, arch: ParsedArch, proxy: str) -> Optional[float]:
        """A proxy's value known without building a network (ONNX: #Params, FLOPs), else None."""
        return None


class GrammarSpace(SearchSpace):
    """A space whose specs a torch-free grammar parses, samples and mutates; the server adds
    the networks, and answers the grammar's errors as InvalidArgument."""

    def __init__(self, grammar: Grammar) -> None:
        self.grammar = grammar
        self.name, self.description = grammar.name, grammar.description
        self.example, self.fields = grammar.example, grammar.fields
        self.default_num_classes = grammar.default_num_classes
        self.default_input_resolution = grammar.default_input_resolution

    def parse(self, spec: Any, num_classes: int = 0, input_resolution: int = 0) -> ParsedArch:
        with spec_errors_as_invalid_argument():
            return self.grammar.parse(spec, num_classes, input_resolution)

    def largest(self, num_classes: int, input_resolution: int) -> Optional[ParsedArch]:
        with spec_errors_as_invalid_argument():
            return self.grammar.largest(num_classes, input_resolution)

    def sample(self, rng: random.Random) -> Any:
        return self.grammar.sample(rng)

    def mutate(self, spec: Any, rng: random.Random) -> Any:
        with spec_errors_as_invalid_argument():
            return self.grammar.mutate(spec, rng)


class SingleNetworkSpace(GrammarSpace):
    """A grammar space with one network per arch and nothing dead in it: `make_network` builds
    it, and the exportable network is a copy."""

    network_type: type[nn.Module]

    @abstractmethod
    def make_network(self, arch: ParsedArch) -> nn.Module:
        """The arch's network (of `network_type`)."""

    def build(self, arch: ParsedArch, variant: str = "") -> nn.Module:
        if variant not in ("", *self.network_variants):
            raise ValueError(f"unknown {self.name} network variant {variant!r}; known: "
                             f"{', '.join(self.network_variants)}")
        return self.make_network(arch)

    def build_exportable(self, arch: ParsedArch, network: Optional[nn.Module] = None
                         ) -> nn.Module:
        """A copy of `network` (default a fresh build): there are no dead parts to drop."""
        if network is None:
            return self.build(arch)
        if not isinstance(network, self.network_type):
            raise TypeError(f"expected a {self.network_type.__name__}, got "
                            f"{type(network).__name__}")
        return copy.deepcopy(network)
