"""What an evaluation reads: each dataset's ground truth, the tables this checkout finds by
default, and the seeded sample of archs drawn from the accuracy table."""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

REPO_ROOT = Path(__file__).resolve().parents[1]


class EvalError(Exception):
    """A problem with the evaluation's inputs (bad option, missing file): shown, not traced."""


@dataclass(frozen=True)
class DatasetSpec:
    name: str  # as the anchors spell it
    accuracy_column: str  # in accuracy_dev.csv
    num_classes: int
    input_resolution: int
    naslib_name: str  # the `dataset` value in naslib_zc_scores.csv


# Ground truths as the Samsung zero-cost-nas table uses them (shared/anchors/README.md): NB201's
# 200-epoch test accuracy, `cifar10-valid` split for CIFAR-10, x-test for the other two.
DATASETS: dict[str, DatasetSpec] = {
    "cifar10": DatasetSpec("cifar10", "c10valid_test", 10, 32, "cifar10"),
    "cifar100": DatasetSpec("cifar100", "c100_test", 100, 32, "cifar100"),
    "imagenet16-120": DatasetSpec("imagenet16-120", "in16_test", 120, 16, "ImageNet16-120"),
}


def dataset_spec(name: str) -> DatasetSpec:
    spec = DATASETS.get(name.lower())
    if spec is None:
        raise EvalError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return spec


def _repo_shared(*parts: str) -> Optional[Path]:
    """A file in the `shared/` folder next to this checkout; None when installed elsewhere."""
    if not ((REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "server").is_dir()):
        return None
    return REPO_ROOT.parent.joinpath("shared", *parts)


def default_accuracy_csv() -> Optional[Path]:
    return _repo_shared("data", "nb201", "accuracy_dev.csv")


def default_hw_csv() -> Optional[Path]:
    return _repo_shared("data", "nb201", "hw_nas_bench_c10_dev.csv")


def default_study_proxies_csv() -> Optional[Path]:
    """The committed 1,000-arch CIFAR-10 evaluation of this checkout, if there is one."""
    path = REPO_ROOT / "docs" / "evaluation" / "nb201-cifar10-1000-seed42" / "per_arch.csv"
    return path if path.is_file() else None


def default_anchors_csv() -> Optional[Path]:
    return _repo_shared("anchors", "reference_correlations.csv")


def read_accuracy(path: Path, column: str) -> list[tuple[int, str, float]]:
    """(index, arch, accuracy) for every row of accuracy_dev.csv with that column filled."""
    if not path.is_file():
        raise EvalError(f"accuracy CSV not found: {path} (pass --csv)")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"index", "arch", column} - set(reader.fieldnames or ())
        if missing:
            raise EvalError(f"{path} lacks the column(s) {', '.join(sorted(missing))}")
        return [(int(r["index"]), r["arch"], float(r[column])) for r in reader if r[column]]


def sample_archs(rows: Sequence[tuple[int, str, float]], n: int,
                 seed: int) -> list[tuple[int, str, float]]:
    if not 1 <= n <= len(rows):
        raise EvalError(f"--archs must be in 1..{len(rows)} (rows available), got {n}")
    # random.Random(seed).sample is stable across Python versions for a given population order.
    return random.Random(seed).sample(list(rows), n)
