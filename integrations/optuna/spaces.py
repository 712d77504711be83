"""An Optuna trial's parameters -> a spec of a space, for every space with a sampler.

Each space is a set of categorical parameters, the same choices its grammar's own sampler draws
from (edgescore.grammar), so an Optuna study searches the space the reference searches do:

- nb201: one parameter per edge (`edge_<from>_<to>`), the 5 ops: all 15,625 cells.
- nats_sss: one width per layer (`channels_<i>`), 8..64: all 32,768 archs.
- fbnet: one op per searchable layer (`layer_<i>`), the 9 ops.
- macro: the stem width, then per stage of MobileNetV2's skeleton its kernel, expansion, width
  multiplier, depth (the last stage has depth 1) and squeeze-excitation; the first stage is
  MobileNetV2's fixed k3 t1 c16 block, as in the grammar's sampler.
- vit: embed dim and depth, then heads and MLP ratio of each of the `depth` layers
  (define-by-run: a layer's parameters exist only in trials that have the layer, so a trial's
  parameters are exactly its arch).
- nb101: the 21 edges of the 7-vertex upper-triangular matrix (0/1) and the 5 interior ops.
  About 27 % of these draws are no NB-101 cell (the input does not reach the output, or more than
  9 edges remain after pruning); they are rejected with the grammar's own SpecError, which the
  objective reports as a failed trial that is never sent to the server. This is what NB-101's
  own random search does (the grammar's `sample`), and a constraint-aware encoding would need
  parameters whose meaning depends on earlier ones, which Optuna's samplers model poorly.

Every spec is checked with the grammar's parser before it leaves here, so the mapping never
returns an invalid spec: SpecError is the only other outcome. Only `trial.suggest_categorical`
is used, so this module needs no optuna import.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from edgescore.grammar import GRAMMARS, fbnet, macro, nats_sss, nb101, nb201, vit


class CategoricalTrial(Protocol):
    """What the mappings use of `optuna.Trial` (a FixedTrial or a fake works as well)."""

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


def nb201_spec(trial: CategoricalTrial) -> str:
    return nb201.cell_string([trial.suggest_categorical(f"edge_{j}_{i}", nb201.OPS)
                              for j, i in nb201.EDGES])


def nats_sss_spec(trial: CategoricalTrial) -> str:
    return nats_sss.canonical_string(tuple(
        trial.suggest_categorical(f"channels_{i}", nats_sss.CANDIDATES)
        for i in range(nats_sss.NUM_LAYERS)))


def fbnet_spec(trial: CategoricalTrial) -> str:
    return fbnet.canonical_string([trial.suggest_categorical(f"layer_{i:02d}", fbnet.OPS)
                                   for i in range(fbnet.NUM_LAYERS)])


def macro_spec(trial: CategoricalTrial) -> dict[str, Any]:
    stages = [dict(macro.SAMPLE_FIRST_STAGE)]
    last = len(macro.SAMPLE_SKELETON)
    for index, (base, stride) in enumerate(macro.SAMPLE_SKELETON, start=1):
        name = f"stage{index}"
        multiplier = trial.suggest_categorical(f"{name}_width_multiplier",
                                               macro.SAMPLE_WIDTH_MULTIPLIERS)
        stages.append({
            "kernel": trial.suggest_categorical(f"{name}_kernel", macro.SAMPLE_KERNELS),
            "expansion": trial.suggest_categorical(f"{name}_expansion",
                                                   macro.SAMPLE_EXPANSIONS),
            "width": macro.round_width(base * multiplier),
            # The last stage is one block in the grammar's sampler (MobileNetV2's 320 stage).
            "depth": (1 if index == last
                      else trial.suggest_categorical(f"{name}_depth", macro.SAMPLE_DEPTHS)),
            "stride": stride,
            "squeeze_excitation": trial.suggest_categorical(f"{name}_se", (False, True)),
        })
    spec = {"stem_width": trial.suggest_categorical("stem_width", macro.SAMPLE_STEMS),
            "stages": stages, "head_width": macro.DEFAULT_HEAD_WIDTH}
    return macro.parse_spec(spec).to_spec()


def vit_spec(trial: CategoricalTrial) -> dict[str, Any]:
    embed_dim = trial.suggest_categorical("embed_dim", vit.SAMPLE_EMBED_DIMS)
    depth = trial.suggest_categorical("depth", vit.SAMPLE_DEPTHS)
    spec = {
        "embed_dim": embed_dim,
        "depth": depth,
        "num_heads": [trial.suggest_categorical(f"layer_{i:02d}_heads", vit.SAMPLE_NUM_HEADS)
                      for i in range(depth)],
        "mlp_ratio": [trial.suggest_categorical(f"layer_{i:02d}_mlp_ratio",
                                                vit.SAMPLE_MLP_RATIOS) for i in range(depth)],
        "patch_size": vit.DEFAULT_PATCH_SIZE,
    }
    return vit.parse_spec(spec).to_spec()


def nb101_spec(trial: CategoricalTrial) -> dict[str, Any]:
    """The 7-vertex spec, or SpecError when the draw is no NB-101 cell (see the module doc)."""
    n = nb101.MAX_VERTICES
    matrix = [[0] * n for _ in range(n)]
    for r in range(n):
        for c in range(r + 1, n):
            matrix[r][c] = trial.suggest_categorical(f"edge_{r}_{c}", (0, 1))
    ops = [nb101.INPUT, *(trial.suggest_categorical(f"op_{v}", nb101.OPS)
                          for v in range(1, n - 1)), nb101.OUTPUT]
    spec = {"adjacency": [v for row in matrix for v in row], "ops": ops}
    nb101.parse_spec(spec)  # raises SpecError for a disconnected or too large cell
    return spec


SPEC_OF_TRIAL: dict[str, Callable[[CategoricalTrial], Any]] = {
    "nb201": nb201_spec, "nats_sss": nats_sss_spec, "fbnet": fbnet_spec, "macro": macro_spec,
    "vit": vit_spec, "nb101": nb101_spec,
}
assert set(SPEC_OF_TRIAL) == set(GRAMMARS), "every space with a sampler has a trial mapping"


def spec_from_trial(trial: CategoricalTrial, space: str) -> Any:
    """The spec of `space` that `trial`'s parameters describe, valid by the space's grammar
    (edgescore.grammar.SpecError for an NB-101 draw that is no cell; ValueError for a space
    without a sampler, e.g. onnx)."""
    mapping = SPEC_OF_TRIAL.get(space)
    if mapping is None:
        raise ValueError(f"no Optuna mapping for space '{space}'; spaces: "
                         f"{', '.join(SPEC_OF_TRIAL)}")
    spec = mapping(trial)
    GRAMMARS[space].parse(spec)  # the grammar has the last word on validity
    return spec
