"""Shared fixtures: the shared data folder and a real server + agent stack on loopback."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from hypothesis import settings
from torch import nn

from edgescore.server.spaces.base import ParsedArch, SearchSpace

SHARED = Path(__file__).resolve().parents[2] / "shared"

# One small arch of each space but NB201, with its input resolution (small resolutions keep the
# proxy suites quick on a CPU).
SMALL_ARCHS = {
    "nats_sss": ("8:16:8:24:16", 32),
    "nb101": ({"adjacency": [[0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 1, 1],
                             [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
               "ops": ["input", "conv3x3-bn-relu", "maxpool3x3", "conv1x1-bn-relu", "output"]},
              32),
    "macro": ({"stem_width": 8, "head_width": 64, "stages": [
        {"kernel": 3, "expansion": 1, "width": 8, "depth": 1, "stride": 1},
        {"kernel": 5, "expansion": 4, "width": 16, "depth": 2, "stride": 2,
         "squeeze_excitation": True}]}, 32),
    "vit": ({"embed_dim": 32, "depth": 2, "num_heads": [1, 2], "mlp_ratio": [2, 3],
             "patch_size": 8}, 32),
    # Mostly identity skips and k3_e1, with one grouped (shuffled) op, a k5 and an e3; the 1x1
    # skip convs where the width changes and the 1504-wide head are always there. 16 px: the
    # last stages run at 2x2.
    "fbnet": ("k3_e1 k3_e1_g2 skip skip skip skip k5_e1 skip skip k3_e1 skip skip skip skip "
              "k3_e3 skip skip skip skip skip skip k3_e1", 16),
}

NB201_ACCURACY = SHARED / "data" / "nb201" / "accuracy_dev.csv"

# The suite's fuzz tests draw the same examples on every run (a CI result must not depend on
# the draw); `make fuzz` selects the "random" profile to look for new failures.
settings.register_profile("fixed", derandomize=True, print_blob=True)
settings.register_profile("random", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fixed"))

# Compute workers run every proxy on one torch thread (several proxies round differently with
# more); values computed in this process must match theirs.
torch.set_num_threads(1)

# Fast measurement settings for tests: the protocol is the same, only shorter.
QUICK_MEASUREMENT = {"warmup_runs": 2, "min_runs": 10, "min_seconds": 0.05, "max_seconds": 10.0}


class ToySpace(SearchSpace):
    """A search space of one hand-made network, for proxy tests on tiny nets (no specs: tests
    make its archs by hand, and nothing exports them)."""

    name = "toy"

    def __init__(self, factory: Callable[[], nn.Module]) -> None:
        self.factory = factory
        self.builds = 0

    def parse(self, spec: object, num_classes: int = 0, input_resolution: int = 0) -> ParsedArch:
        raise NotImplementedError

    def build(self, arch: ParsedArch) -> nn.Module:
        self.builds += 1
        return self.factory()

    def build_exportable(self, arch: ParsedArch, network: nn.Module | None = None) -> nn.Module:
        raise NotImplementedError


def nb201_rows() -> list[dict[str, str]]:
    with NB201_ACCURACY.open() as f:
        return list(csv.DictReader(f))


PG_URL = os.environ.get("EDGESCORE_TEST_POSTGRES_URL", "")
PG_MISSING = "EDGESCORE_TEST_POSTGRES_URL not set (tools/with_postgres.sh sets it)"


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """A URL of the test PostgreSQL cluster whose tables live in a schema of their own, dropped
    afterwards: tests stay independent inside the one test database."""
    import uuid

    import psycopg

    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield PG_URL + ("&" if "?" in PG_URL else "?") + f"options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(scope="module")
def stack() -> Iterator:
    from edgescore.client.launcher import LocalStack

    with LocalStack(agents={"local-cpu": 1}) as s:
        yield s


# ---- ONNX helpers shared by the space, upload and fuzz tests ----------------------------------

def onnx_bytes(module: nn.Module, x: torch.Tensor, constant_folding: bool = True) -> bytes:
    """`module` (eval mode) exported as the server exports: legacy exporter, opset 17, input
    "input" and output "logits". `constant_folding=False` keeps BatchNorm as a node."""
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", category=DeprecationWarning)  # the legacy exporter
        torch.onnx.export(module.eval(), (x,), buffer, dynamo=False, opset_version=17,
                          do_constant_folding=constant_folding, input_names=["input"],
                          output_names=["logits"])
    return buffer.getvalue()


def assert_onnx_matches_torch(module: nn.Module, x: torch.Tensor, rtol: float = 0.0) -> None:
    """onnxruntime on the exported `module` gives torch's eval-mode outputs (atol 1e-4)."""
    data = onnx_bytes(module, x)
    with torch.no_grad():
        expected = module(x).numpy()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (actual,) = session.run(None, {"input": x.numpy()})
    np.testing.assert_allclose(actual, expected, atol=1e-4, rtol=rtol)


def randomize_batchnorm(net: nn.Module, generator: torch.Generator) -> None:
    """Non-trivial BN statistics, so that eval-mode parity checks the folded affine maps too."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=generator) * 0.1)
