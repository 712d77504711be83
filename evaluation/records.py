"""An evaluation's settings (`EvalConfig`) and its outcome (`EvalRun`): nb201_eval fills them,
report reads them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from edgescore.evaluation.inputs import DatasetSpec
from edgescore.evaluation.per_arch import ArchRow

SPACE = "nb201"


@dataclass
class EvalConfig:
    dataset: str = "cifar10"
    archs: int = 100
    seed: int = 42
    proxies: Optional[Sequence[str]] = None  # None: every registered proxy
    workers: int = 0  # 0: one per CPU core
    out: Optional[Path] = None  # None: out/eval-<space>-<dataset>-<N>-<seed>
    device: str = "cpu"
    csv: Optional[Path] = None  # None: ../shared/data/nb201/accuracy_dev.csv of the checkout
    anchors: Optional[Path] = None  # None: ../shared/anchors/reference_correlations.csv
    naslib: Optional[Path] = None  # None: naslib_zc_scores.csv next to the accuracy CSV
    within_naslib: bool = False  # sample only archs NASLib scored (for the agreement column)
    progress: bool = True
    space: str = SPACE
    # proxy -> extra settings that replace its defaults (e.g. {"swap": {"inits": "4"}})
    extra: dict[str, dict[str, str]] = field(default_factory=dict)
    # proxy -> batch size in place of its default (e.g. {"vkdnw": 16})
    batch: dict[str, int] = field(default_factory=dict)


@dataclass
class EvalRun:
    config: EvalConfig
    spec: DatasetSpec
    proxies: list[str]
    out_dir: Path
    rows: list[ArchRow]  # the sample, in sample order
    computed: int  # archs computed by this run (0: everything came from the CSV)
    reused: int
    settings_key: str
    proxy_settings: dict[str, dict]
    seconds: float = 0.0
    files: dict[str, Path] = field(default_factory=dict)
    summaries: list = field(default_factory=list)  # report.ProxySummary per proxy
