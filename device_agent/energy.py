"""Power and energy of the timed runs, from whatever sensor the board has.

Sensors, tried in this order (EDGESCORE_ENERGY_SENSOR=rapl|jetson|hwmon|tegrastats|none picks
one):

- rapl: Linux powercap, `/sys/class/powercap/intel-rapl:N/energy_uj` (the top-level package
  domains, summed; sub-domains such as intel-rapl:0:0 are inside their package and not added).
  An energy counter: read before and after the timed runs; a counter that wrapped is corrected
  with that domain's `max_energy_range_uj`. CPU package (and DRAM where the package counts it),
  not the whole board.
- jetson: the INA3221 rail monitors of a Jetson in sysfs. JetPack 5/6: a hwmon device named
  `ina3221` with `in<N>_label`, `in<N>_input` (mV) and `curr<N>_input` (mA); JetPack 4: the iio
  device of the `ina3221x` driver with `rail_name_<N>` and `in_power<N>_input` (mW). The board's
  input rail is read (VDD_IN, POM_5V_IN, VIN_SYS_5V0, ...), else the sum of the rails. Sampled.
- hwmon: `/sys/class/hwmon/hwmon*/power<N>_input` (µW; the device's `name` file names it). Sampled.
- tegrastats: the `tegrastats` tool's lines (`VDD_IN 5000mW/5000mW`, or JetPack 4's
  `VDD_IN 5000/5000`, `POM_5V_IN 2239/2239`): the first (current) figure of the input rail, else
  the sum of the rails. Sampled at its --interval.

A sampled sensor is read by a background thread at SAMPLE_HZ (tegrastats: every 100 ms) from the
start of the timed runs to their end, plus one reading at each end. Mean power is the mean of the
readings; energy per inference is mean power x the timed runs' wall time / the number of runs.
Where there is no sensor the result says so: EnergyStats.measured false and a note.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Sequence
from typing import Optional

SAMPLE_HZ = 20.0
TEGRASTATS_INTERVAL_MS = 100
NO_SENSOR = ("no sensor: no powercap/RAPL energy counter, no Jetson INA3221 rails, no hwmon "
             "power input and no tegrastats on this board")
# The rail that is the whole board's input, per Jetson (first found wins).
INPUT_RAILS = ("VDD_IN", "POM_5V_IN", "VIN_SYS_5V0", "VIN", "SYS5V", "VDD_5V_IN")
ENV = "EDGESCORE_ENERGY_SENSOR"


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _number(path: str) -> Optional[float]:
    try:
        return float(_read(path))
    except ValueError:
        return None


# -- sensors ------------------------------------------------------------------------------------


class CounterSensor:
    """An energy counter (RAPL): `read()` gives µJ per domain and `ranges` their wrap points."""

    method = "counter"

    def __init__(self, name: str, files: Sequence[tuple[str, float]]) -> None:
        self.name = name
        self.files = list(files)  # (energy_uj path, max_energy_range_uj)

    def read(self) -> list[float]:
        values = []
        for path, _ in self.files:
            value = _number(path)
            if value is None:
                raise OSError(f"unreadable energy counter {path}")
            values.append(value)
        return values

    def energy_uj(self, before: Sequence[float], after: Sequence[float]) -> float:
        """Energy between two reads, summed over domains, each corrected for wraparound."""
        total = 0.0
        for (_, wrap), b, a in zip(self.files, before, after):
            delta = a - b
            if delta < 0 and wrap > 0:
                delta += wrap  # the counter passed max_energy_range_uj and restarted at 0
            total += max(delta, 0.0)
        return total


class SampledSensor:
    """A power sensor read in watts by `read_w()`, sampled at `rate_hz`."""

    method = "sampled"

    def __init__(self, name: str, read_w: Callable[[], Optional[float]], rate_hz: float = SAMPLE_HZ,
                 close: Callable[[], None] | None = None) -> None:
        self.name, self.read_w, self.rate_hz = name, read_w, rate_hz
        self._close = close

    def close(self) -> None:
        if self._close is not None:
            self._close()


def rapl_sensor(root: str = "/") -> Optional[CounterSensor]:
    """The top-level RAPL domains of /sys/class/powercap (summed), or None."""
    base = os.path.join(root, "sys/class/powercap")
    files, names = [], []
    for path in sorted(glob.glob(os.path.join(base, "intel-rapl:*"))):
        if os.path.basename(path).count(":") != 1:  # intel-rapl:0:0 is inside intel-rapl:0
            continue
        energy = os.path.join(path, "energy_uj")
        if _number(energy) is None:
            continue  # absent, or unreadable (root-only since Linux 5.10 on many distros)
        files.append((energy, _number(os.path.join(path, "max_energy_range_uj")) or 0.0))
        names.append(_read(os.path.join(path, "name")) or os.path.basename(path))
    if not files:
        return None
    return CounterSensor("rapl:" + "+".join(names), files)


def _pick_rail(rails: dict[str, float]) -> tuple[str, float]:
    """(name, mW) of the board's input rail, else ("sum", the sum of every rail)."""
    for name in INPUT_RAILS:
        if name in rails:
            return name, rails[name]
    return "sum(" + ",".join(rails) + ")", sum(rails.values())


def jetson_rails(root: str = "/") -> dict[str, Callable[[], Optional[float]]]:
    """Rail name -> a reader of its power in mW, from the INA3221 in sysfs (JetPack 4, 5, 6)."""
    rails: dict[str, Callable[[], Optional[float]]] = {}
    # JetPack 5/6: hwmon "ina3221", in<N>_label + in<N>_input (mV) + curr<N>_input (mA).
    for hw in sorted(glob.glob(os.path.join(root, "sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*"))
                     + sorted(glob.glob(os.path.join(root, "sys/class/hwmon/hwmon*")))):
        if _read(os.path.join(hw, "name")) != "ina3221":
            continue
        for label in sorted(glob.glob(os.path.join(hw, "in*_label"))):
            n = os.path.basename(label)[2:-6]
            volt, curr = os.path.join(hw, f"in{n}_input"), os.path.join(hw, f"curr{n}_input")
            name = _read(label)
            if name and not name.lower().startswith("sum of") and os.path.exists(curr):
                rails.setdefault(name, lambda v=volt, c=curr: _mul_mw(v, c))
    # JetPack 4: iio device of ina3221x, rail_name_<N> + in_power<N>_input (mW).
    for dev in sorted(glob.glob(os.path.join(root, "sys/bus/i2c/drivers/ina3221x/*/iio:device*"))):
        for label in sorted(glob.glob(os.path.join(dev, "rail_name_*"))):
            n = label.rsplit("_", 1)[1]
            power = os.path.join(dev, f"in_power{n}_input")
            if _read(label) and os.path.exists(power):
                rails.setdefault(_read(label), lambda p=power: _number(p))
    return rails


def _mul_mw(volt_path: str, curr_path: str) -> Optional[float]:
    mv, ma = _number(volt_path), _number(curr_path)
    return None if mv is None or ma is None else mv * ma / 1000.0


def jetson_sensor(root: str = "/") -> Optional[SampledSensor]:
    rails = jetson_rails(root)
    if not rails:
        return None
    probe = {name: read() for name, read in rails.items()}
    probe = {k: v for k, v in probe.items() if v is not None}
    if not probe:
        return None
    name, _ = _pick_rail(probe)
    if name in rails:
        read = rails[name]
        return SampledSensor(f"jetson-ina3221:{name}",
                             lambda: None if (v := read()) is None else v / 1000.0)

    def total() -> Optional[float]:
        values = [r() for r in rails.values()]
        values = [v for v in values if v is not None]
        return sum(values) / 1000.0 if values else None

    return SampledSensor(f"jetson-ina3221:{name}", total)


def hwmon_sensor(root: str = "/") -> Optional[SampledSensor]:
    """The first hwmon power<N>_input (µW) that reads, or None."""
    for path in sorted(glob.glob(os.path.join(root, "sys/class/hwmon/hwmon*/power*_input"))):
        if _number(path) is None:
            continue
        hw = os.path.dirname(path)
        label = _read(path.replace("_input", "_label"))
        name = f"hwmon:{_read(os.path.join(hw, 'name')) or os.path.basename(hw)}/" \
               f"{label or os.path.basename(path)[:-6]}"
        return SampledSensor(name, lambda p=path: None if (v := _number(p)) is None else v / 1e6)
    return None


_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*)\s+(\d+)(?:mW)?/(\d+)(?:mW)?(?![\w.])")


def parse_tegrastats(line: str) -> dict[str, float]:
    """Rail -> current mW of one tegrastats line. JetPack 5/6 write `VDD_IN 4716mW/4716mW`;
    JetPack 4 writes `VDD_IN 3029/3029` (TX2, Xavier) or `POM_5V_IN 2239/2239` (Nano): the
    second figure is the running average, the first the current reading. RAM/SWAP/IRAM figures
    end in MB/kB and are not rails."""
    return {m.group(1): float(m.group(2)) for m in _RAIL.finditer(line)}


def tegrastats_power_w(line: str) -> Optional[float]:
    rails = parse_tegrastats(line)
    return _pick_rail(rails)[1] / 1000.0 if rails else None


class TegrastatsReader:
    """Runs `tegrastats --interval N` and keeps its latest line."""

    def __init__(self, command: str, interval_ms: int = TEGRASTATS_INTERVAL_MS) -> None:
        self.proc = subprocess.Popen([command, "--interval", str(interval_ms)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.latest: Optional[str] = None
        self.rail = ""
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.latest = line

    def read_w(self) -> Optional[float]:
        return None if self.latest is None else tegrastats_power_w(self.latest)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def tegrastats_sensor() -> Optional[SampledSensor]:
    command = shutil.which("tegrastats")
    if command is None:
        return None
    reader = TegrastatsReader(command)
    return SampledSensor("tegrastats", reader.read_w, 1000.0 / TEGRASTATS_INTERVAL_MS, reader.close)


def detect_sensor(root: str = "/", choice: str | None = None):
    """The board's power sensor (CounterSensor or SampledSensor), or None: "no sensor"."""
    choice = (os.environ.get(ENV, "") if choice is None else choice).strip().lower()
    finders = {"rapl": lambda: rapl_sensor(root), "jetson": lambda: jetson_sensor(root),
               "hwmon": lambda: hwmon_sensor(root), "tegrastats": tegrastats_sensor}
    if choice == "none":
        return None
    for name, find in finders.items():
        if choice and name != choice:
            continue
        try:
            sensor = find()
        except Exception:  # noqa: BLE001 - an odd sysfs is no sensor, never a failed job
            sensor = None
        if sensor is not None:
            return sensor
    return None


def no_sensor_note(root: str = "/") -> str:
    """Why there is no sensor: none at all, or RAPL counters this user may not read (root-only
    on many kernels since 5.10: a udev rule or `chmod o+r .../energy_uj` opens them)."""
    rapl = glob.glob(os.path.join(root, "sys/class/powercap/intel-rapl:*/energy_uj"))
    if rapl and all(_number(p) is None for p in rapl):
        return ("no sensor: the powercap/RAPL energy counters exist but this user cannot read "
                "them (root-only); no Jetson rails, hwmon power input or tegrastats either")
    return NO_SENSOR


def close_sensor(sensor: object) -> None:
    if isinstance(sensor, SampledSensor):
        sensor.close()
