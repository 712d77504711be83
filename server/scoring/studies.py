"""Pareto fronts of (proxy up, latency down) points, and named studies that collect them.

A named study (`ParetoObjective.study`) collects every candidate scored under that name on this
server; a candidate's Pareto rank is its front among the study's points so far.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Optional

from edgescore.server.errors import ResourceExhausted

MAX_STUDIES = 1_000
MAX_STUDY_POINTS = 200_000
MAX_STUDY_NAME = 200


def front_ranks(points: Sequence[tuple[float, float]]) -> list[int]:
    """Non-dominated sorting of (score up, latency down) points in O(n log n): 1 = first front.
    a dominates b: a is no worse in both and better in one; equal points share a front.
    Processed by score descending (then latency ascending), a point's dominators come before it;
    it joins the first front whose lowest latency so far is above its own (an identical point
    joins its twin's front: equal points do not dominate each other)."""
    order = sorted(range(len(points)), key=lambda i: (-points[i][0], points[i][1]))
    best: list[float] = []  # per front, the lowest latency of its points so far (ascending)
    ranks = [0] * len(points)
    previous: Optional[int] = None
    for i in order:
        if previous is not None and points[previous] == points[i]:
            ranks[i] = ranks[previous]
        else:
            front = bisect.bisect_right(best, points[i][1])
            if front == len(best):
                best.append(points[i][1])
            else:
                best[front] = min(best[front], points[i][1])
            ranks[i] = front + 1
        previous = i
    return ranks


class Studies:
    """Named collections of (proxy, latency) points, in memory, bounded. A study is kept per
    (name, proxy, device class): points of another proxy or board are on other scales, so one
    name used with several of them holds several fronts, never a mixed one."""

    def __init__(self) -> None:
        self._points: OrderedDict[tuple[str, str, str], list[tuple[float, float]]] = \
            OrderedDict()
        self._lock = threading.Lock()

    def add_and_rank(self, name: str, point: tuple[float, float], proxy: str = "",
                     device_class: str = "") -> int:
        key = (name, proxy, device_class)
        with self._lock:
            points = self._points.setdefault(key, [])
            if len(points) >= MAX_STUDY_POINTS:
                raise ResourceExhausted(f"study '{name}' holds {MAX_STUDY_POINTS} candidates, "
                                        "the most one study may hold")
            points.append(point)
            self._points.move_to_end(key)
            while len(self._points) > MAX_STUDIES:
                self._points.popitem(last=False)
            snapshot = list(points)
        return front_ranks(snapshot)[-1]
