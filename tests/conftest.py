"""Shared fixtures: the shared data folder and a real server + agent stack on loopback."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from torch import nn

from edgescore.server.spaces.base import ParsedArch

SHARED = Path(__file__).resolve().parents[2] / "shared"
NB201_ACCURACY = SHARED / "data" / "nb201" / "accuracy_dev.csv"

# Fast measurement settings for tests: the protocol is the same, only shorter.
QUICK_MEASUREMENT = {"warmup_runs": 2, "min_runs": 10, "min_seconds": 0.05, "max_seconds": 10.0}


class ToySpace:
    """A search space of one hand-made network, for proxy tests on tiny nets."""

    name = "toy"

    def __init__(self, factory: Callable[[], nn.Module]) -> None:
        self.factory = factory
        self.builds = 0

    def build(self, arch: ParsedArch) -> nn.Module:
        self.builds += 1
        return self.factory()


def nb201_rows() -> list[dict[str, str]]:
    with NB201_ACCURACY.open() as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def stack() -> Iterator:
    from edgescore.client.launcher import LocalStack

    with LocalStack(agents={"local-cpu": 1}) as s:
        yield s
