"""Reference populations: a seeded random sample of a space, one proxy's values over it, computed
once (and cached in the store when one is given), for rank normalisation (`percentile`)."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional

import numpy as np

from edgescore.grammar.nb201 import SIZE as NB201_SIZE
from edgescore.grammar.nb201 import canonical_payload, canonical_string, cell_at, parse_arch_string
from edgescore.server.scoring.ranks import percentile_sorted
from edgescore.server.store import ProxyKey, Store

log = logging.getLogger(__name__)

Sampler = Callable[[int, int], Sequence[str]]  # (n, seed) -> arch specs

def first_distinct(specs: Iterable[Any], key: Callable[[Any], str], n: int) -> list[Any]:
    """The first `n` of `specs` whose `key` was not seen before (fewer if they run out)."""
    found, seen = [], set()
    for spec in specs:
        k = key(spec)
        if k not in seen:
            seen.add(k)
            found.append(spec)
            if len(found) == n:
                break
    return found


def nb201_sampler(n: int, seed: int) -> list[str]:
    """`n` NB201 cells drawn uniformly (every edge's op uniform) with `seed`, one per isomorphism
    class: two spellings of one cell share a stored value, and would weigh it twice."""
    rng = np.random.default_rng(seed)
    cells = (cell_at(int(index)) for index in rng.permutation(NB201_SIZE))
    return first_distinct(
        cells, lambda spec: canonical_string(canonical_payload(parse_arch_string(spec))), n)


class ReferencePopulation:
    """One proxy's values over a seeded sample of a space.

    `compute(arch) -> float` computes the proxy for one arch spec (e.g. a canonical NB201
    string); `sampler(n, seed)` draws the sample. Values are computed on first use, once, under a
    lock (concurrent first requests wait for one computation). With `store` and `key_for`, each
    arch's value is read from / written to the store, so a restart recomputes nothing. NaN values
    (and archs whose compute raised) are left out; infinities stay (they sort fine).
    """

    def __init__(self, compute: Callable[[str], float], sampler: Sampler = nb201_sampler, *,
                 size: int = 500, seed: int = 0, store: Optional[Store] = None,
                 key_for: Optional[Callable[[str], ProxyKey]] = None, parallel: int = 1) -> None:
        if store is not None and key_for is None:
            raise ValueError("caching in a store needs key_for (e.g. ProxyCache.key)")
        self._compute, self._sampler = compute, sampler
        self.parallel = max(1, parallel)  # members computed at once (each call blocks)
        self.size, self.seed = size, seed
        self._store, self._key_for = store, key_for
        self._values: Optional[np.ndarray] = None
        self._lock = threading.Lock()

    @classmethod
    def from_values(cls, values: Sequence[float]) -> ReferencePopulation:
        """A population of known values (tests, or values loaded elsewhere)."""
        population = cls(lambda arch: math.nan, lambda n, seed: [], size=len(values))
        population._values = np.sort(np.asarray([v for v in values if not math.isnan(v)], float))
        return population

    def archs(self) -> list[str]:
        return list(self._sampler(self.size, self.seed))

    def values(self) -> np.ndarray:
        """The population's values, sorted ascending (computed on first call)."""
        with self._lock:
            if self._values is None:
                with ThreadPoolExecutor(self.parallel, "population") as pool:
                    found = list(pool.map(self._value, self.archs()))
                self._values = np.sort(np.asarray([v for v in found if not math.isnan(v)], float))
            return self._values

    def value_of(self, arch: str) -> float:
        """One member's value (from the store when it holds it); NaN where it failed."""
        return self._value(arch)

    def _value(self, arch: str) -> float:
        key = self._key_for(arch) if self._store is not None and self._key_for else None
        if key is not None:
            hit = self._store.get_proxy_result(key)  # type: ignore[union-attr]
            if hit is not None:
                return math.nan if hit.value is None else hit.value
        try:
            value = float(self._compute(arch))
        except Exception as exc:  # one bad arch must not sink the population
            # Not stored: the failure may be transient (out of memory), and a stored row would
            # keep the arch out of every later population and block the good value's storage.
            log.warning("reference population: %s failed: %s", arch, exc)
            return math.nan
        if key is not None:
            self._store.put_proxy_result(key, value)  # type: ignore[union-attr]
        return value

    def percentile(self, value: float) -> float:
        """`value`'s percentile in the population, in (0, 100); see ranks.percentile."""
        return percentile_sorted(value, self.values())

    def __len__(self) -> int:
        return len(self.values())
