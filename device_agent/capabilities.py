"""What this board is and which runtimes it has, sent once in Register."""

from __future__ import annotations

import importlib
import logging
import os
import platform
import socket
from collections.abc import Mapping

import edgescore
from edgescore.v1 import agent_pb2, fleet_pb2

log = logging.getLogger(__name__)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except (OSError, ValueError):
        return ""


def board_model() -> str:
    """Device-tree model (Raspberry Pi, most ARM boards) or the Jetson L4T release line."""
    model = _read("/proc/device-tree/model").replace("\x00", "").strip()
    if model:
        return model
    tegra = _read("/etc/nv_tegra_release").strip().splitlines()
    return tegra[0].lstrip("# ").strip() if tegra else ""


def cpu_model() -> str:
    """CPU name from /proc/cpuinfo: x86 "model name", else ARM "Hardware", else Pi "Model"."""
    fields = {}
    for line in _read("/proc/cpuinfo").splitlines():
        key, sep, value = line.partition(":")
        key = key.strip()
        if sep and key not in fields and value.strip():
            fields[key] = value.strip()
    for key in ("model name", "Hardware", "Model"):
        if key in fields:
            return fields[key]
    try:
        return platform.processor()
    except Exception:
        return ""


def memory_bytes() -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            try:
                return int(parts[1]) * 1024  # the figure is in kB
            except (IndexError, ValueError):
                return 0
    return 0


def _dist_version(dist: str) -> str:
    try:
        from importlib import metadata

        return metadata.version(dist)
    except Exception:
        return ""


def _delegates(module) -> list[str]:
    """The delegates that really load with this LiteRT module (tflite_runner)."""
    try:
        from edgescore.device_agent.tflite_runner import available_delegates

        return available_delegates(module)
    except Exception as exc:
        log.warning("could not probe TFLite delegates: %s", exc)
        return ["xnnpack"]


def runtimes() -> list[fleet_pb2.RuntimeInfo]:
    """Inference runtimes importable here; a runtime that fails to import is simply left out."""
    found = []
    try:
        import onnxruntime as ort

        found.append(
            fleet_pb2.RuntimeInfo(
                name="onnxruntime",
                version=ort.__version__,
                execution_providers=list(ort.get_available_providers()),
                formats=["onnx"],
            )
        )
    except Exception as exc:
        log.warning("onnxruntime unavailable: %s", exc)
    # Both are listed when both are installed; tflite_runner times with ai-edge-litert first.
    for module, name, dist in (
        ("ai_edge_litert.interpreter", "ai-edge-litert", "ai-edge-litert"),
        ("tflite_runtime.interpreter", "tflite-runtime", "tflite-runtime"),
    ):
        try:
            mod = importlib.import_module(module)
        except Exception:
            continue
        found.append(
            fleet_pb2.RuntimeInfo(name=name, version=_dist_version(dist), formats=["tflite"],
                                  delegates=_delegates(mod))
        )
    return found


def _safe(fn, default):
    try:
        return fn()
    except Exception:
        return default


def collect_capabilities(
    device_class: str, tags: Mapping[str, str] | None = None
) -> agent_pb2.Capabilities:
    """Describe this host for Register. Every probe is guarded: unreadable → empty / 0."""
    return agent_pb2.Capabilities(
        hostname=_safe(socket.gethostname, ""),
        board_model=_safe(board_model, ""),
        cpu_model=_safe(cpu_model, ""),
        cpu_cores=_safe(os.cpu_count, 0) or 0,
        memory_bytes=_safe(memory_bytes, 0),
        os=_safe(platform.platform, ""),
        python=platform.python_version(),
        runtimes=_safe(runtimes, []),
        device_class=device_class,
        tags=dict(tags or {}),
        agent_version=edgescore.__version__,
        machine=_safe(platform.machine, ""),
    )
