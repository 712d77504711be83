"""The status of a proxy that failed with an error no proxy raised on purpose.

Out of memory (torch's allocators, Python's MemoryError) is RESOURCE_EXHAUSTED whatever the
network. Otherwise the network decides: a space whose networks the client uploads (ONNX) ran the
proxy on the client's graph, so the failure is that graph's (FAILED_PRECONDITION, with the
reason); on a network the server builds itself it is our bug (INTERNAL, logged by the caller).
"""

from __future__ import annotations

import torch

from edgescore.server.errors import (
    FailedPrecondition,
    ResourceExhausted,
    ServerError,
    reads_as_out_of_memory,
)


def short_reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first[:160]}" if first else type(exc).__name__


def unexpected_failure(exc: BaseException, failed: str, device: torch.device,
                       uploaded: bool) -> ServerError:
    """`failed` says what failed, e.g. "synflow: failed"; the reason follows it."""
    reason = short_reason(exc)
    if isinstance(exc, MemoryError) or reads_as_out_of_memory(str(exc)[:1000]):
        return ResourceExhausted(f"{failed}: out of memory on {device} ({reason})")
    if uploaded:
        return FailedPrecondition(f"{failed} on the uploaded model ({reason})")
    return ServerError(f"{failed} ({reason})")
