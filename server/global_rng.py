"""One lock for torch's global random state, which every thread of the server shares.

Building a network draws its initial weights from the global RNG, so "seed, then build" must not
interleave with another thread's seeding: the proxy engine (per-request seeds) and the exporter
(the export seed) both hold this lock for the whole seed-and-build.
"""

from __future__ import annotations

import threading

GLOBAL_RNG_LOCK = threading.RLock()
