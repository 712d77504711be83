"""Freed heap memory handed back to the operating system after work on a large upload.

An ONNX upload passes through several large blocks at once: the request's bytes, the parsed
model, and the serialized copies `onnx.checker` and shape inference make of it (then, in a
worker, the converted network). Once glibc's malloc has freed a large block it raises its mmap
threshold (up to 32 MiB), so later blocks of that size come from the heap, and a heap whose free
space is fragmented is not given back: across 300 malformed 8 MiB uploads the server grew from
420 to 1,100 MiB and its workers by 400 MiB each, with no object left referenced
(`docs/reliability.md`). `malloc_trim` returns every free page; it walks the whole heap (tens of
milliseconds on a large one), so it runs after an upload of `LARGE_UPLOAD_BYTES` or more only,
where the garbage is worth it. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any, Optional

LARGE_UPLOAD_BYTES = 1 << 20


def _malloc_trim() -> Optional[Any]:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # no C library by that name, or not glibc
        return None


_TRIM = _malloc_trim()


def release_freed_memory() -> bool:
    """Give the heap's free pages back; True when something was released."""
    return bool(_TRIM(0)) if _TRIM is not None else False


def upload_bytes(spec: Any) -> int:
    """The size of the ONNX upload in `spec` as the spaces parse it ({"model": bytes, ...});
    0 for any other spec."""
    model = spec.get("model") if isinstance(spec, dict) else None
    return len(model) if isinstance(model, (bytes, bytearray)) else 0


def after_upload(size: int) -> None:
    """Once the work on an upload of `size` bytes is over, successful or not: its garbage
    given back if the upload was large."""
    if size >= LARGE_UPLOAD_BYTES:
        release_freed_memory()
