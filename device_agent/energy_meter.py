"""The energy meter of the timed runs: reads a sensor of device_agent/energy.py from the first
timed run to the last and turns it into mean power and energy per inference (EnergyStats)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional

from edgescore.device_agent.energy import CounterSensor, SampledSensor, no_sensor_note
from edgescore.v1 import common_pb2


@dataclass
class EnergyMeter:
    """Brackets the timed runs (timing.time_runs calls start, then stop(n) or abort)."""

    sensor: object = None
    clock: Callable[[], float] = time.perf_counter
    result: common_pb2.EnergyStats = field(default_factory=common_pb2.EnergyStats)
    _t0: float = 0.0
    _before: list = field(default_factory=list)
    _samples: list = field(default_factory=list)
    _thread: Optional[threading.Thread] = None
    _error: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self._samples, self._stop, self._error = [], threading.Event(), ""
        if isinstance(self.sensor, CounterSensor):
            try:
                self._before = self.sensor.read()
            except OSError as exc:  # a sensor never fails a job: the result says why
                self._error = f"energy counter unreadable: {exc}"
        elif isinstance(self.sensor, SampledSensor):
            self._sample()
            self._thread = threading.Thread(target=self._loop, name="energy-sampler", daemon=True)
            self._thread.start()
        self._t0 = self.clock()

    def _sample(self) -> None:
        try:
            value = self.sensor.read_w()
        except Exception:  # noqa: BLE001 - a failed read is a missing sample
            value = None
        if value is not None:
            self._samples.append(value)

    def _loop(self) -> None:
        period = 1.0 / max(self.sensor.rate_hz, 0.1)
        while not self._stop.wait(period):
            self._sample()

    def _end_thread(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def abort(self) -> None:
        self._end_thread()

    def stop(self, runs: int) -> common_pb2.EnergyStats:
        elapsed = self.clock() - self._t0
        out = common_pb2.EnergyStats()
        if self.sensor is None:
            out.note = no_sensor_note()
        elif isinstance(self.sensor, CounterSensor):
            out.sensor, out.method = self.sensor.name, self.sensor.method
            try:
                if self._error:
                    raise OSError(self._error)
                uj = self.sensor.energy_uj(self._before, self.sensor.read())
                fill(out, uj / 1000.0, elapsed, runs, samples=2)
            except OSError as exc:
                text = str(exc)
                out.note = text if text.startswith("energy counter") else \
                    f"energy counter unreadable: {text}"
        else:
            self._end_thread()
            self._sample()
            out.sensor, out.method = self.sensor.name, self.sensor.method
            out.sample_rate_hz = self.sensor.rate_hz
            if self._samples:
                mean_w = sum(self._samples) / len(self._samples)
                fill(out, mean_w * elapsed * 1000.0, elapsed, runs, samples=len(self._samples))
            else:
                out.note = "the power sensor gave no reading during the timed runs"
        self.result = out
        return out


def fill(out: common_pb2.EnergyStats, energy_mj: float, elapsed_s: float, runs: int,
         samples: int) -> None:
    """Mean power and energy per inference from the timed runs' energy (mJ) and wall time."""
    out.samples = samples
    if runs <= 0 or elapsed_s <= 0:
        out.note = "no timed run to divide the energy by"
        return
    out.measured = True
    out.mean_power_w = energy_mj / 1000.0 / elapsed_s
    out.energy_per_inference_mj = energy_mj / runs
