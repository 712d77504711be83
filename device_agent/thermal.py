"""Thermal and clock state of the board, read from sysfs (and `vcgencmd` on Raspberry Pi)."""

from __future__ import annotations

import glob
import math
import os
import shutil
import subprocess

from edgescore.v1 import common_pb2

THERMAL_GLOB = "/sys/class/thermal/thermal_zone*"
CPUFREQ_DIR = "/sys/devices/system/cpu/cpu0/cpufreq"
# Zone types seen on boards and PCs whose sensor tracks the CPU: Raspberry Pi "cpu-thermal",
# Jetson "CPU-therm" / "cpu-thermal", Rockchip "soc-thermal", x86 "x86_pkg_temp", "acpitz".
_CPU_ZONE_HINTS = ("cpu", "soc", "x86_pkg", "coretemp", "package", "k10temp", "acpitz")
_VCGENCMD_TIMEOUT_S = 1.0


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read().strip()
    except (OSError, ValueError):
        return ""


def cpu_temp_celsius(pattern: str = THERMAL_GLOB) -> float:
    """Hottest CPU-like thermal zone in °C, NaN when there is none or none is readable."""
    temps = []
    for zone in sorted(glob.glob(pattern)):
        kind = _read(os.path.join(zone, "type")).lower()
        if not any(hint in kind for hint in _CPU_ZONE_HINTS):
            continue
        try:
            raw = float(_read(os.path.join(zone, "temp")))
        except ValueError:
            continue
        # sysfs reports millidegrees; a few out-of-tree drivers report whole degrees.
        celsius = raw / 1000.0 if abs(raw) > 500 else raw
        if -50.0 < celsius < 200.0:  # disabled sensors report sentinels such as -274000
            temps.append(celsius)
    return max(temps) if temps else math.nan


def _khz_to_mhz(path: str) -> float:
    try:
        return float(_read(path)) / 1000.0
    except ValueError:
        return 0.0


def vcgencmd_throttled() -> str:
    """Raw `vcgencmd get_throttled` answer (e.g. "throttled=0x0"), empty when unavailable."""
    exe = shutil.which("vcgencmd")
    if not exe:
        return ""
    try:
        done = subprocess.run(
            [exe, "get_throttled"],
            capture_output=True,
            text=True,
            timeout=_VCGENCMD_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def is_throttled(raw: str) -> bool:
    """True when a `get_throttled` answer has a *current* condition bit set.

    Bits 0-3 are under-voltage, ARM frequency capped, throttled and soft temperature limit right
    now; the higher "has occurred since boot" bits say nothing about this measurement.
    """
    _, _, value = raw.partition("=")
    try:
        return bool(int(value.strip(), 16) & 0xF)
    except ValueError:
        return False


def read_env(query_vcgencmd: bool = True) -> common_pb2.DeviceEnv:
    """Current DeviceEnv. Never raises; unreadable values are NaN (temperature) or 0 / "".

    query_vcgencmd=False skips the subprocess, e.g. for heartbeats sent while a job is timed.
    """
    env = common_pb2.DeviceEnv(cpu_temp_celsius=math.nan)
    try:
        env.cpu_temp_celsius = cpu_temp_celsius()
        env.cpu_freq_mhz = _khz_to_mhz(os.path.join(CPUFREQ_DIR, "scaling_cur_freq"))
        env.cpu_max_freq_mhz = _khz_to_mhz(os.path.join(CPUFREQ_DIR, "cpuinfo_max_freq"))
        if query_vcgencmd:
            env.throttled = vcgencmd_throttled()
    except Exception:  # a sensor quirk must never fail a job or a heartbeat
        pass
    return env
