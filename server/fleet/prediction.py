"""The latency predictor as the latency service uses it: a device class's stored measurements are
loaded into it the first time the class is asked about, and every new measurement after that.
"""

from __future__ import annotations

import logging
import threading
from typing import Optional, Union

from edgescore.server.fleet.jobs import Subject
from edgescore.server.fleet.measurement import Target
from edgescore.server.scoring.predictor import Prediction, PredictorBank
from edgescore.server.spaces.base import ParsedArch
from edgescore.server.store import Store

log = logging.getLogger(__name__)


def shape(arch: Union[ParsedArch, Subject]) -> tuple[int, int]:
    """The network shape a predictor is kept per (with the workload)."""
    return (arch.num_classes, arch.input_resolution)


class Predictions:
    def __init__(self, bank: Optional[PredictorBank], store: Optional[Store]) -> None:
        self._bank, self._store = bank, store
        self._lock = threading.Lock()
        self._loaded: set[str] = set()  # classes whose stored measurements the bank has

    def has_measurements(self, device_class: str, space: str) -> bool:
        """Whether the predictor can answer for the class and space (measured before, e.g.
        before a restart)."""
        bank = self._loaded_for(device_class)
        return bank is not None and bank.has_measurements(device_class, space)

    def predict(self, arch: ParsedArch, target: Target) -> Optional[Prediction]:
        bank = self._loaded_for(target.device_class)
        return bank.predict(target.device_class, arch.space, arch.canonical, shape(arch),
                            target.settings) if bank else None

    def learn(self, device_class: str, subject: Subject, median_ms: float,
              settings_json: str) -> None:
        if self._bank is None or median_ms <= 0:
            return
        try:
            self._bank.observe(device_class, subject.space, subject.canonical, median_ms,
                               shape(subject), settings_json)
        except KeyError:
            pass  # a space without latency features

    def _loaded_for(self, device_class: str) -> Optional[PredictorBank]:
        """The bank, with this class's stored measurements loaded once; None if there is none."""
        if self._bank is None:
            return None
        with self._lock:
            fresh = device_class not in self._loaded
            self._loaded.add(device_class)
        if fresh and self._store is not None:
            try:
                self._bank.load(self._store, [device_class])
            except Exception:  # noqa: BLE001 - no prediction is better than a failed request
                log.warning("could not load measurements of %s for the predictor", device_class,
                            exc_info=True)
        return self._bank
