"""The operator's label sets for the `learned` proxy: archs with known accuracy (a CSV of
space, arch, accuracy given with --label-set), and the ranker fitted on them.

A ranker is fitted once per space, member list with their settings, class count and resolution,
on the first request that needs it. Its members' values for the labelled archs are computed and
stored the way reference populations' are, so a restart reads them back instead.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import threading
from pathlib import Path

from edgescore.grammar.errors import SpecError
from edgescore.server.errors import FailedPrecondition, ServerError
from edgescore.server.scoring.composite import CompositeSettings
from edgescore.server.scoring.learned import LearnedError, LearnedRanker, feature_matrix
from edgescore.server.scoring.percentiles import Populations
from edgescore.server.spaces import registry as spaces
from edgescore.server.spaces.base import ParsedArch

COLUMNS = ("space", "arch", "accuracy")
Labels = dict[str, list[tuple[str, float]]]  # space -> (arch spec text, accuracy)


class LabelSetError(ValueError):
    """A label-set file the server cannot use (the message names the line)."""


def read_label_set(path: Path) -> Labels:
    """Every row's arch checked against its space; an arch listed twice (in any spelling) is an
    error, since two accuracies of one network cannot both be its label."""
    labels: Labels = {}
    seen: dict[tuple[str, str], int] = {}
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        missing = set(COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise LabelSetError(f"{path} lacks the column(s) {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line}"
            try:
                space = spaces.get_space(row["space"])
                text = row["arch"].strip()
                canonical = space.parse(json.loads(text) if text.startswith("{") else text
                                        ).canonical
                accuracy = float(row["accuracy"])
            except (SpecError, ServerError, ValueError) as exc:
                raise LabelSetError(f"{where}: {exc}") from None
            if not math.isfinite(accuracy):
                raise LabelSetError(f"{where}: accuracy {row['accuracy']!r} is not finite")
            if (space.name, canonical) in seen:
                raise LabelSetError(f"{where}: the arch of line {seen[space.name, canonical]} "
                                    "again")
            seen[space.name, canonical] = line
            labels.setdefault(space.name, []).append((text, accuracy))
    return labels


class LabelSets:
    """`predict` serves `learned`; `populations` computes the members for labelled archs."""

    def __init__(self, labels: Labels, populations: Populations) -> None:
        self._labels, self._populations = labels, populations
        self._rankers: dict[tuple, LearnedRanker] = {}
        self._locks: dict[tuple, threading.Lock] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_csv(cls, path: Path, populations: Populations) -> LabelSets:
        return cls(read_label_set(path), populations)

    def spaces(self) -> list[str]:
        return sorted(self._labels)

    def predict(self, arch: ParsedArch, settings: CompositeSettings,
                values: dict[str, float]) -> float:
        """`arch`'s predicted accuracy from its members' `values` (blocks while the ranker is
        first fitted: call off the event loop)."""
        ranker = self._ranker(arch, settings)
        x, _ = feature_matrix([arch.canonical], arch.space,
                              {name: [values[name]] for name in settings.names})
        return float(ranker.predict(x)[0])

    def _ranker(self, arch: ParsedArch, settings: CompositeSettings) -> LearnedRanker:
        labels = self._labels.get(arch.space)
        if not labels:
            raise FailedPrecondition(
                f"no label set for space '{arch.space}' on this server (it has labels for: "
                f"{', '.join(self.spaces()) or 'none'})")
        key = (arch.space, repr(dataclasses.astuple(settings)), arch.num_classes,
               arch.input_resolution)
        with self._lock:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # concurrent first requests wait for one fit
            ranker = self._rankers.get(key)
            if ranker is None:
                ranker = self._rankers[key] = self._fit(arch, settings, labels)
        return ranker

    def _fit(self, arch: ParsedArch, settings: CompositeSettings,
             labels: list[tuple[str, float]]) -> LearnedRanker:
        specs = [spec for spec, _ in labels]
        values = {name: self._populations.member_values(arch, name, resolved, specs)
                  for name, _, resolved in settings.members}
        archs = [spaces.get_space(arch.space).parse(
            json.loads(s) if s.startswith("{") else s).canonical for s in specs]
        x, names = feature_matrix(archs, arch.space, values)
        try:
            return LearnedRanker.fit(x, [accuracy for _, accuracy in labels], names)
        except LearnedError as exc:
            raise FailedPrecondition(f"the label set of space '{arch.space}': {exc}") from None
