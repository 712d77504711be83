"""Random and adversarial specs and bytes against every parser (hypothesis): a spec is accepted,
or refused with INVALID_ARGUMENT (RESOURCE_EXHAUSTED for size caps); nothing else, ever.

`make test` runs a fixed, derandomized sample so that a result does not depend on the draw;
`make fuzz` draws fresh examples, many more of them, to look for new failures."""

from __future__ import annotations

import json
import os

import grpc
import pytest
import torch
from conftest import onnx_bytes as export_onnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from edgescore.client import EdgescoreError
from edgescore.client.launcher import LocalStack
from edgescore.client.requests import arch_spec, score_request
from edgescore.server.errors import InvalidArgument
from edgescore.server.spaces import registry as spaces

FIELDS = ["adjacency", "ops", "stem_width", "stages", "head_width", "kernel", "expansion",
          "width", "depth", "stride", "squeeze_excitation", "embed_dim", "num_heads",
          "mlp_ratio", "patch_size", "model", "input_name"]
OPS = ["input", "output", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", "none",
       "skip_connect", "nor_conv_3x3", "avg_pool_3x3"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70), st.integers(0, 80),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30), st.sampled_from(OPS),
    st.binary(max_size=40))
json_like = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=12),
                            st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8),
                                            inner, max_size=6)),
    max_leaves=40)
nb201_like = st.lists(st.sampled_from(["|", "+", "~", "0", "1", "2", "3", "none", "skip_connect",
                                       "nor_conv_3x3", "avg_pool_3x3", "x", " "]),
                      max_size=40).map("".join)
nats_like = st.one_of(
    st.lists(st.integers(-8, 80), max_size=7).map(lambda v: ":".join(map(str, v))),
    st.lists(st.integers(-8, 80), max_size=7))
# FBNet: near 22 tokens, op names, ids and near misses, as a string or a list.
fbnet_tokens = st.one_of(
    st.sampled_from(["k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3",
                     "k5_e6", "skip", "0", "8", "9", "-1", "08", "k7_e6", "SKIP", "", "\t"]),
    st.integers(-2, 10))
fbnet_like = st.one_of(
    st.lists(fbnet_tokens, min_size=18, max_size=25).map(lambda v: " ".join(map(str, v))),
    st.lists(fbnet_tokens, min_size=18, max_size=25))
# Near-valid dict specs: the right keys with random values, where the checks have to work.
near_valid = {
    "nb101": st.fixed_dictionaries({"adjacency": st.lists(st.integers(-1, 2), max_size=60)
                                    | st.lists(st.lists(st.integers(0, 1), max_size=8),
                                               max_size=8),
                                    "ops": st.lists(st.sampled_from(OPS), max_size=9)}),
    "macro": st.fixed_dictionaries(
        {"stem_width": st.integers(-1, 64), "head_width": st.integers(0, 128),
         "stages": st.lists(st.fixed_dictionaries(
             {"kernel": st.integers(0, 9), "expansion": st.floats(-1, 20),
              "width": st.integers(-1, 64), "depth": st.integers(0, 4),
              "stride": st.integers(0, 3), "squeeze_excitation": st.booleans()}), max_size=4)}),
    "vit": st.fixed_dictionaries(
        {"embed_dim": st.integers(-1, 96), "depth": st.integers(0, 4),
         "num_heads": st.lists(st.integers(-1, 4), max_size=5),
         "mlp_ratio": st.lists(st.floats(-1, 6), max_size=5),
         "patch_size": st.integers(0, 40)}),
}
SPECS = {
    "nb201": st.one_of(nb201_like, json_like),
    "nats_sss": st.one_of(nats_like, json_like),
    "fbnet": st.one_of(fbnet_like, json_like),
    "nb101": st.one_of(near_valid["nb101"], json_like),
    "macro": st.one_of(near_valid["macro"], json_like),
    "vit": st.one_of(near_valid["vit"], json_like),
}
sizes = st.tuples(st.integers(-3, 200_000), st.sampled_from([0, 8, 16, 30, 32, 33, 64, 4096]))


def _valid_onnx() -> bytes:
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                           nn.Linear(4, 3))
    return export_onnx(module, torch.zeros(1, 3, 8, 8))


VALID_ONNX = _valid_onnx()
onnx_bytes = st.one_of(
    st.binary(max_size=300),
    st.tuples(st.integers(0, len(VALID_ONNX) - 1), st.binary(min_size=1, max_size=8)).map(
        lambda cut: VALID_ONNX[:cut[0]] + cut[1] + VALID_ONNX[cut[0] + len(cut[1]):]),
    st.integers(0, len(VALID_ONNX)).map(lambda n: VALID_ONNX[:n]))

# `make fuzz` raises these (and draws at random); the defaults keep `make test` short.
SCALE = float(os.environ.get("EDGESCORE_FUZZ_SCALE", "1"))
FUZZ = settings(max_examples=int(150 * SCALE), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("space", list(SPECS))
def test_parsers_accept_or_say_invalid_argument(space: str) -> None:
    @FUZZ
    @given(spec=SPECS[space], size=sizes)
    def check(spec, size) -> None:
        try:
            spaces.parse_arch(space, spec, *size)
        except InvalidArgument as exc:
            assert exc.field.startswith("arch"), exc.field
            assert len(str(exc)) < 600

    check()


@FUZZ
@given(data=onnx_bytes, input_name=st.one_of(st.just(""), st.text(max_size=20)),
       size=sizes)
def test_onnx_bytes_accepted_or_invalid_argument(data: bytes, input_name: str, size) -> None:
    try:
        spaces.parse_arch("onnx", {"model": data, "input_name": input_name}, *size)
    except InvalidArgument as exc:
        assert exc.field.startswith("arch"), exc.field


@pytest.mark.parametrize("space", list(SPECS))
def test_sdk_builds_a_request_or_says_invalid_argument(space: str) -> None:
    """The SDK turns anything into an ArchSpec or refuses it the way the server would: it must
    never raise anything else at a user (found by the gRPC fuzz: `{'adjacency': True}`)."""
    @FUZZ
    @given(spec=SPECS[space] | json_like.map(lambda v: json.dumps(v, default=repr)))
    def check(spec) -> None:
        try:
            arch_spec(spec, space=space)
        except EdgescoreError as exc:
            assert exc.code == grpc.StatusCode.INVALID_ARGUMENT, exc
            assert exc.details.startswith("arch"), exc.details

    check()


@FUZZ
@given(measurement=st.dictionaries(st.sampled_from(["format", "precision", "warmup_runs",
                                                   "threads", "input_shape"]) | st.text(max_size=6),
                                   scalars, max_size=4),
       proxy_settings=st.dictionaries(st.sampled_from(["batch_size", "seed", "init", "repeats"])
                                      | st.text(max_size=6), scalars, max_size=4))
def test_sdk_request_options_build_or_say_invalid_argument(measurement, proxy_settings) -> None:
    try:
        score_request("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                      measurement=measurement, proxy_settings=proxy_settings)
    except EdgescoreError as exc:
        assert exc.code == grpc.StatusCode.INVALID_ARGUMENT, exc


@pytest.mark.slow
def test_random_specs_over_grpc_get_only_the_allowed_codes() -> None:
    """Through the real server (small caps so accepted networks stay cheap)."""
    allowed = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED}
    caps = ["--max-params", "3000000", "--max-macs", "300000000"]
    with LocalStack(agents={}, server_args=caps) as stack, stack.client(timeout=120) as client:
        for space in [*SPECS, "onnx"]:
            _over_grpc(client, space, allowed)()


def _over_grpc(client, space: str, allowed: set):
    strategy = onnx_bytes if space == "onnx" else SPECS[space]

    @settings(max_examples=int(25 * SCALE), deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(spec=strategy, size=sizes)
    def check(spec, size) -> None:
        try:
            if space == "onnx":
                client.score(spec, ["params"], space="onnx")
            else:  # non-strings for string spaces are refused by the SDK, with the same code
                value = spec if isinstance(spec, (str, dict)) else json.dumps(spec, default=repr)
                client.score(value, ["params"], space=space,
                             num_classes=max(size[0], 0) % 2**32, input_resolution=size[1])
        except EdgescoreError as exc:
            assert exc.code in allowed, (space, spec, exc)

    return check
