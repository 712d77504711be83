"""The grammar package (edgescore.grammar): torch-free, and the server answers its errors alike."""

from __future__ import annotations

import pickle
import random
import subprocess
import sys
import textwrap

import pytest

from edgescore.grammar import GRAMMARS, SpecError
from edgescore.server.errors import InvalidArgument
from edgescore.server.spaces import registry

# Refuses torch and numpy (the client's extra has neither), then uses every grammar as the client
# does: through search_spaces.sampler_for.
WITHOUT_TORCH = textwrap.dedent("""
    import importlib.abc, random, sys

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "numpy"):
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, Refuse())
    from edgescore.client.search_spaces import sampler_for
    from edgescore.grammar import GRAMMARS, SpecError

    rng = random.Random(0)
    for name, grammar in GRAMMARS.items():
        spec = sampler_for(name).sample(rng)
        child = grammar.mutate(spec, rng)
        assert grammar.parse(child).canonical != grammar.parse(spec).canonical, name
    try:
        GRAMMARS["nb201"].parse("|bad~0|")
    except SpecError as exc:
        print(exc)
    assert not any(m.split(".")[0] in ("torch", "numpy") for m in sys.modules)
    print("ok")
""")


def test_grammar_and_client_sampling_work_without_torch() -> None:
    out = subprocess.run([sys.executable, "-c", WITHOUT_TORCH], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "arch.nb201: expected 3 node groups separated by '+', got 1", "ok"]


@pytest.mark.parametrize("name", sorted(GRAMMARS))
def test_server_answers_a_grammar_error_with_its_field_and_message(name: str) -> None:
    with pytest.raises(SpecError) as grammar_error:
        GRAMMARS[name].parse(["not", "a", "spec"], 0, 0)
    with pytest.raises(InvalidArgument) as server_error:
        registry.get_space(name).parse(["not", "a", "spec"], 0, 0)
    assert server_error.value.field == grammar_error.value.field
    assert server_error.value.message == str(grammar_error.value) == grammar_error.value.message


def test_spec_error_pickles() -> None:
    error = pickle.loads(pickle.dumps(SpecError("arch.vit.depth", "missing")))
    assert (error.field, error.detail, str(error)) == ("arch.vit.depth", "missing",
                                                      "arch.vit.depth: missing")


def test_every_grammar_space_of_the_server_parses_as_its_grammar() -> None:
    rng = random.Random(1)
    for name, grammar in GRAMMARS.items():
        spec = grammar.sample(rng)
        assert registry.get_space(name).parse(spec) == grammar.parse(spec)
