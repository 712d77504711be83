"""The search spaces' grammar: parse a spec to its canonical form, sample, mutate. Torch-free
(the client, the agent and the server share it); the networks are the server's
(edgescore.server.spaces)."""

from __future__ import annotations

from edgescore.grammar import fbnet, macro, nats_sss, nb101, nb201, vit
from edgescore.grammar.base import Grammar, ParsedArch, arch_hash
from edgescore.grammar.errors import SpecError

GRAMMARS: dict[str, Grammar] = {
    g.name: g for g in (nb201.GRAMMAR, nats_sss.GRAMMAR, nb101.GRAMMAR, macro.GRAMMAR,
                        vit.GRAMMAR, fbnet.GRAMMAR)}

__all__ = ["GRAMMARS", "Grammar", "ParsedArch", "SpecError", "arch_hash"]
