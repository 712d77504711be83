"""NAS-Bench-101 cells: parsing (adjacency + ops), pruning, NB-101's graph hash, sampling and
mutation.

Everything follows google-research/nasbench: lib/model_spec.py (pruning), lib/graph_util.py
(hash_module) and api.py (_check_spec: what is valid). The canonical form is NB-101's own module
hash, so `ParsedArch.canonical` is the key of the benchmark's dataset.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from typing import Any

from edgescore.grammar.base import Grammar, ParsedArch
from edgescore.grammar.errors import SpecError, quote
from edgescore.grammar.shapes import check_shape, shape_fields

FIELD = "arch.nb101"
INPUT, OUTPUT = "input", "output"
# Order matters: the index of an op is its label in the hash (config.py available_ops).
OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
MAX_VERTICES = 7
MAX_EDGES = 9
# 'same' max-pools (ceil_mode here) take any size; 8 keeps the 3x3 convs meaningful at the end.
RESOLUTION_RANGE = (8, 1024)

Matrix = tuple[tuple[int, ...], ...]
Payload = tuple[Matrix, tuple[str, ...]]  # the pruned (matrix, ops)


def _bad(field: str, message: str) -> SpecError:
    return SpecError(f"{FIELD}.{field}" if field else FIELD, message)


def _read_ops(ops: Any) -> tuple[str, ...]:
    if not isinstance(ops, (list, tuple)):
        raise _bad("ops", f"expected a list of op names, got {type(ops).__name__}")
    if not 2 <= len(ops) <= MAX_VERTICES:
        raise _bad("ops", f"expected 2..{MAX_VERTICES} vertices, got {len(ops)}")
    for index, op in enumerate(ops):
        if not isinstance(op, str):
            raise _bad("ops", f"op {index} is a {type(op).__name__}, expected a string")
        expected = INPUT if index == 0 else OUTPUT if index == len(ops) - 1 else None
        if expected and op != expected:
            raise _bad("ops", f"op {index} must be {expected!r}, got {quote(op)}")
        if not expected and op not in OPS:
            raise _bad("ops", f"unknown op {quote(op)} at vertex {index}; interior "
                              f"vertices take {', '.join(OPS)}")
    return tuple(ops)


def _read_matrix(adjacency: Any, n: int) -> Matrix:
    """A flat row-major list of n*n entries (the proto form) or a list of n rows, entries 0/1."""
    if not isinstance(adjacency, (list, tuple)):
        raise _bad("adjacency", f"expected a list, got {type(adjacency).__name__}")
    if len(adjacency) == n * n and not any(isinstance(x, (list, tuple)) for x in adjacency):
        rows = [adjacency[r * n:(r + 1) * n] for r in range(n)]
    elif len(adjacency) == n:
        rows = list(adjacency)
        for r, row in enumerate(rows):
            if not isinstance(row, (list, tuple)) or len(row) != n:
                raise _bad("adjacency", f"row {r} is not a list of {n} entries")
    else:
        raise _bad("adjacency", f"{n} ops need {n * n} entries (flat, row-major) or {n} rows "
                                f"of {n}, got a list of {len(adjacency)}")
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if isinstance(value, bool) or not isinstance(value, int) or value not in (0, 1):
                # Names the type, never the value: str() of a huge int raises.
                raise _bad("adjacency", f"entry [{r}][{c}] (a {type(value).__name__}) is not "
                                        f"0 or 1")
            if value and c <= r:
                raise _bad("adjacency", f"edge {r}->{c} is not upper triangular (edges go from "
                                        f"a lower to a higher vertex)")
    return tuple(tuple(row) for row in rows)


def prune(matrix: Matrix, ops: tuple[str, ...]) -> Payload | None:
    """Drop vertices not on an input -> output path (model_spec.py _prune); None if the input
    does not reach the output, which NB-101 marks invalid."""
    n = len(ops)
    forward, backward = {0}, {n - 1}
    for v in range(1, n):  # edges point forward, so one pass in order settles reachability
        if any(matrix[u][v] for u in forward):
            forward.add(v)
    for v in range(n - 2, -1, -1):
        if any(matrix[v][w] for w in backward):
            backward.add(v)
    if n - 1 not in forward:
        return None
    kept = sorted(forward & backward)
    return tuple(tuple(matrix[r][c] for c in kept) for r in kept), tuple(ops[v] for v in kept)


def graph_hash(matrix: Matrix, ops: tuple[str, ...]) -> str:
    """NB-101's isomorphism-invariant module hash (graph_util.hash_module on the pruned spec):
    label every vertex with md5 of (out-degree, in-degree, op label), refine n times with the
    sorted hashes of its in- and out-neighbours, then md5 the sorted multiset. The string forms
    (`str` of a tuple and of a list) are part of the hash and are reproduced as NB-101 makes them.
    """
    n = len(ops)
    labels = [-1] + [OPS.index(op) for op in ops[1:-1]] + [-2]
    in_degree = [sum(matrix[u][v] for u in range(n)) for v in range(n)]
    out_degree = [sum(matrix[v]) for v in range(n)]

    def md5(text: str) -> str:
        return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()

    hashes = [md5(str((out_degree[v], in_degree[v], labels[v]))) for v in range(n)]
    for _ in range(n):
        hashes = [
            md5("".join(sorted(hashes[u] for u in range(n) if matrix[u][v])) + "|"
                + "".join(sorted(hashes[w] for w in range(n) if matrix[v][w])) + "|" + hashes[v])
            for v in range(n)
        ]
    return md5(str(sorted(hashes)))


def parse_spec(spec: Any) -> tuple[Matrix, tuple[str, ...], Payload]:
    """Validate a spec dict; returns the matrix and ops as given and the pruned payload."""
    if not isinstance(spec, dict):
        raise _bad("", f"expected a dict with 'adjacency' and 'ops', got {type(spec).__name__}")
    if len(spec) > 2 or set(spec) != {"adjacency", "ops"}:
        names = sorted(repr(k[:30]) if isinstance(k, str) else type(k).__name__
                       for k in itertools.islice(spec, 5))
        raise _bad("", f"expected exactly the keys 'adjacency' and 'ops', got {', '.join(names)}"
                       + (" ..." if len(spec) > 5 else ""))
    ops = _read_ops(spec["ops"])
    matrix = _read_matrix(spec["adjacency"], len(ops))
    payload = prune(matrix, ops)
    if payload is None:
        raise _bad("adjacency", "the input does not reach the output (NB-101: invalid spec, "
                                "graph is disconnected)")
    edges = sum(map(sum, payload[0]))
    if edges > MAX_EDGES:  # counted after pruning, as NB-101's api._check_spec does
        raise _bad("adjacency", f"{edges} edges on input->output paths, at most {MAX_EDGES}")
    return matrix, ops, payload


def _to_spec(matrix: Matrix, ops: tuple[str, ...]) -> dict[str, list[Any]]:
    return {"adjacency": [v for row in matrix for v in row], "ops": list(ops)}


class Nb101Grammar(Grammar):
    """NAS-Bench-101 cells (423,624 unique architectures)."""

    name = "nb101"
    description = (
        "NAS-Bench-101: a DAG cell of up to 7 vertices and 9 edges, ops conv3x3/conv1x1/maxpool; "
        "CIFAR network of 3 stacks x 3 cells, 128 stem channels"
    )
    example = (
        '{"adjacency":[0,1,0,0,1,1,0,0,0,1,0,0,0,0,0,0,0,1,0,0,1,0,0,0,0,0,1,0,0,0,0,0,0,1,0,'
        '0,0,0,0,0,0,1,0,0,0,0,0,0,0],"ops":["input","conv3x3-bn-relu","maxpool3x3",'
        '"conv3x3-bn-relu","conv3x3-bn-relu","conv1x1-bn-relu","output"]}'
    )
    fields = {
        "adjacency": "n*n 0/1 entries, row-major (or n rows of n); upper triangular; "
                     f"at most {MAX_EDGES} edges on input->output paths",
        "ops": f"n <= {MAX_VERTICES} names: 'input', then {', '.join(OPS)}, then 'output'",
        **shape_fields(resolution_range=RESOLUTION_RANGE),
    }
    default_num_classes = 10
    default_input_resolution = 32

    def parse(self, spec: Any, num_classes: int = 0, input_resolution: int = 0) -> ParsedArch:
        _, _, payload = parse_spec(spec)
        classes, resolution = check_shape(num_classes, input_resolution,
                                          resolution_range=RESOLUTION_RANGE)
        return ParsedArch(
            space=self.name,
            canonical=graph_hash(*payload),
            num_classes=classes,
            input_resolution=resolution,
            payload=payload,
        )

    def sample(self, rng: random.Random) -> dict[str, list[Any]]:
        """A random valid 7-vertex spec by rejection, as NB-101's own random search does
        (NASBench.ipynb random_spec; NASLib samples the same way): uniform over valid (matrix,
        ops) encodings, not over the 423,624 isomorphism classes. It favours small pruned cells:
        about 1 draw in 10 is the bare input -> output cell."""
        n = MAX_VERTICES
        while True:
            matrix = tuple(tuple(rng.randint(0, 1) if c > r else 0 for c in range(n))
                           for r in range(n))
            ops = (INPUT, *(rng.choice(OPS) for _ in range(n - 2)), OUTPUT)
            payload = prune(matrix, ops)
            if payload is not None and sum(map(sum, payload[0])) <= MAX_EDGES:
                return _to_spec(matrix, ops)

    def mutate(self, spec: Any, rng: random.Random) -> dict[str, list[Any]]:
        """One edge flipped or one op swapped in the spec as given (pruned vertices included, as
        NB-101's mutate_spec works on the original matrix), drawn uniformly among the single
        changes that give a valid spec with a different hash. If there is none (e.g. a bare
        input -> output cell), a fresh sample with a different hash."""
        matrix, ops, payload = parse_spec(spec)
        parent = graph_hash(*payload)
        n = len(ops)
        moves: list[tuple[Any, ...]] = [("edge", r, c) for r in range(n) for c in range(r + 1, n)]
        moves += [("op", v, op) for v in range(1, n - 1) for op in OPS if op != ops[v]]
        rng.shuffle(moves)
        for kind, a, b in moves:
            rows, new_ops = [list(row) for row in matrix], list(ops)
            if kind == "edge":
                rows[a][b] = 1 - rows[a][b]
            else:
                new_ops[a] = b
            child = _to_spec(tuple(map(tuple, rows)), tuple(new_ops))
            try:
                _, _, child_payload = parse_spec(child)
            except SpecError:
                continue
            if graph_hash(*child_payload) != parent:
                return child
        while True:
            child = self.sample(rng)
            if graph_hash(*parse_spec(child)[2]) != parent:
                return child


GRAMMAR = Nb101Grammar()
