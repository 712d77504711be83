"""Energy sensors of the agent, on the synthetic sysfs trees and tegrastats lines of
tests/data/energy (hand-written, not recorded: see tests/data/README.md), and on this machine,
which has no sensor."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from edgescore.device_agent import energy
from edgescore.device_agent.energy import (
    CounterSensor,
    SampledSensor,
    detect_sensor,
    hwmon_sensor,
    jetson_sensor,
    parse_tegrastats,
    rapl_sensor,
    tegrastats_power_w,
)
from edgescore.device_agent.energy_meter import EnergyMeter

DATA = Path(__file__).parent / "data" / "energy"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _rapl_copy(tmp_path: Path) -> Path:
    shutil.copytree(DATA / "rapl", tmp_path / "rapl")
    return tmp_path / "rapl"


def _write(root: Path, domain: str, value: int) -> None:
    (root / "sys/class/powercap" / domain / "energy_uj").write_text(f"{value}\n")


def test_rapl_sums_packages_not_subdomains_and_handles_wraparound(tmp_path: Path) -> None:
    root = _rapl_copy(tmp_path)
    sensor = rapl_sensor(str(root))
    assert isinstance(sensor, CounterSensor)
    assert sensor.name == "rapl:package-0+package-1"  # intel-rapl:0:0 (core) is not added
    clock = FakeClock()
    meter = EnergyMeter(sensor, clock=clock)
    meter.start()
    # 2 s of runs: package-0 +3 J, package-1 wraps: 262143328850 is its range, it read 2e6 before.
    wrap = 262143328850
    _write(root, "intel-rapl:0", 1_000_000 + 3_000_000)
    _write(root, "intel-rapl:1", 1_000_000)  # passed the range: (wrap - 2e6) + 1e6 = wrap - 1e6
    _write(root, "intel-rapl:0:0", 9_000_000)  # ignored
    clock.now = 2.0
    out = meter.stop(runs=100)
    total_uj = 3_000_000 + (wrap - 2_000_000 + 1_000_000)
    assert out.measured and out.method == "counter" and out.sample_rate_hz == 0
    assert out.energy_per_inference_mj == pytest.approx(total_uj / 1000 / 100)
    assert out.mean_power_w == pytest.approx(total_uj / 1e6 / 2.0)


def test_rapl_without_wrap() -> None:
    sensor = CounterSensor("rapl:x", [("unused", 1000.0)])
    assert sensor.energy_uj([100.0], [400.0]) == 300.0
    assert sensor.energy_uj([900.0], [100.0]) == 200.0  # wrapped at 1000


def test_hwmon_power_in_microwatts() -> None:
    sensor = hwmon_sensor(str(DATA / "hwmon"))
    assert isinstance(sensor, SampledSensor)
    assert sensor.name == "hwmon:power_meter/system"
    assert sensor.read_w() == pytest.approx(87.5)


def test_hwmon_sampled_meter_energy_per_inference() -> None:
    sensor = hwmon_sensor(str(DATA / "hwmon"))
    clock = FakeClock()
    meter = EnergyMeter(sensor, clock=clock)
    meter.start()
    clock.now = 0.5
    out = meter.stop(runs=50)
    assert out.measured and out.method == "sampled" and out.sample_rate_hz == energy.SAMPLE_HZ
    assert out.samples >= 2  # one reading at each end at least
    assert out.mean_power_w == pytest.approx(87.5)
    assert out.energy_per_inference_mj == pytest.approx(87.5 * 0.5 * 1000 / 50)


def test_jetson_jetpack5_ina3221_hwmon_reads_vdd_in() -> None:
    sensor = jetson_sensor(str(DATA / "jetson_jp5"))
    assert sensor is not None and sensor.name == "jetson-ina3221:VDD_IN"
    assert sensor.read_w() == pytest.approx(5080 * 1196 / 1e6)


def test_jetson_jetpack4_ina3221x_iio_reads_pom_5v_in() -> None:
    sensor = jetson_sensor(str(DATA / "jetson_jp4"))
    assert sensor is not None and sensor.name == "jetson-ina3221:POM_5V_IN"
    assert sensor.read_w() == pytest.approx(2.239)


@pytest.mark.parametrize("name, rail, first_mw", [
    ("tegrastats_jetpack4_tx2.txt", "VDD_IN", 2985.0),
    ("tegrastats_jetpack4_nano.txt", "POM_5V_IN", 2239.0),
    ("tegrastats_jetpack5_xavier_nx.txt", "VDD_IN", 4461.0),
    ("tegrastats_jetpack6_orin_nano.txt", "VDD_IN", 4716.0),
])
def test_tegrastats_formats(name: str, rail: str, first_mw: float) -> None:
    line = (DATA / name).read_text().splitlines()[0]
    rails = parse_tegrastats(line)
    assert rails[rail] == first_mw
    # RAM 2118/7854MB, SWAP, IRAM 0/252kB are not rails
    assert not {"RAM", "SWAP", "IRAM"} & set(rails)
    assert tegrastats_power_w(line) == pytest.approx(first_mw / 1000)


def test_tegrastats_current_not_average_and_agx_orin_sum() -> None:
    second = (DATA / "tegrastats_jetpack6_orin_nano.txt").read_text().splitlines()[1]
    assert parse_tegrastats(second)["VDD_IN"] == 7316.0  # current 7316, average 6016
    orin = (DATA / "tegrastats_jetpack5_agx_orin.txt").read_text().strip()
    rails = parse_tegrastats(orin)
    assert set(rails) == {"VDD_GPU_SOC", "VDD_CPU_CV", "VIN_SYS_5V0", "VDDQ_VDD2_1V8AO"}
    assert tegrastats_power_w(orin) == pytest.approx(2.822)  # VIN_SYS_5V0 is the input rail
    assert tegrastats_power_w("RAM 1/2MB CPU [1%@100]") is None


def test_meter_abort_stops_the_sampler() -> None:
    meter = EnergyMeter(SampledSensor("fake", lambda: 1.0, rate_hz=100.0))
    meter.start()
    meter.abort()
    assert meter._thread is None


def test_no_sensor_on_this_machine() -> None:
    """This machine has no /sys/class/powercap, no hwmon power input and no tegrastats: the agent
    reports "no sensor" rather than a figure."""
    if (os.path.isdir("/sys/class/powercap") or shutil.which("tegrastats")
            or hwmon_sensor() is not None):
        pytest.skip("this machine has a power sensor")
    assert detect_sensor(choice="") is None
    meter = EnergyMeter(None)
    meter.start()
    out = meter.stop(10)
    assert not out.measured and out.note.startswith("no sensor")


def test_sensor_choice_none_and_env(monkeypatch) -> None:
    assert detect_sensor(str(DATA / "hwmon"), choice="none") is None
    assert detect_sensor(str(DATA / "hwmon"), choice="rapl") is None
    monkeypatch.setenv(energy.ENV, "hwmon")
    assert detect_sensor(str(DATA / "hwmon")).name.startswith("hwmon:")


def test_unreadable_rapl_is_named_in_the_note(tmp_path: Path) -> None:
    root = _rapl_copy(tmp_path)
    for domain in ("intel-rapl:0", "intel-rapl:1", "intel-rapl:0:0"):
        # stands in for a root-only counter (the tests run as root, which reads anything)
        (root / "sys/class/powercap" / domain / "energy_uj").write_text("")
    assert rapl_sensor(str(root)) is None
    assert "cannot read" in energy.no_sensor_note(str(root))
    assert energy.no_sensor_note(str(tmp_path / "empty")) == energy.NO_SENSOR


def test_a_counter_that_stops_reading_gives_a_note_not_a_failed_job(tmp_path: Path) -> None:
    root = _rapl_copy(tmp_path)
    sensor = rapl_sensor(str(root))
    _write(root, "intel-rapl:1", 0)
    (root / "sys/class/powercap/intel-rapl:1/energy_uj").write_text("")  # unreadable now
    meter = EnergyMeter(sensor)
    meter.start()
    out = meter.stop(5)
    assert not out.measured and out.note.startswith("energy counter unreadable")
