"""When and how long to wait before trying a call again.

UNAVAILABLE is retried by default: the server is restarting, draining or unreachable, and every
edgescore RPC the SDK retries is idempotent (a repeated Score is answered from the store or joins
the pending job). So is a RESOURCE_EXHAUSTED that carries the server's retry pushback (its compute
queue is full: the wait is at least the pause it asks for); one without it is over a size cap, an
answer. Other codes are answers, not outages.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Optional

import grpc

from edgescore.client.errors import EdgescoreError


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8           # 1 = no retries
    initial_backoff: float = 0.25   # seconds before the second attempt
    max_backoff: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.2             # ± share of each wait, so clients do not retry in lockstep
    codes: frozenset = frozenset({grpc.StatusCode.UNAVAILABLE})
    retry_pushback: bool = True     # RESOURCE_EXHAUSTED with a pushback: the queue was full

    def retryable(self, code: grpc.StatusCode, attempt: int, pushback: bool = False) -> bool:
        """Whether a call that failed with `code` on attempt `attempt` (1-based) goes again."""
        wanted = code in self.codes or (
            pushback and self.retry_pushback and code == grpc.StatusCode.RESOURCE_EXHAUSTED)
        return wanted and attempt < self.max_attempts

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based)."""
        base = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter)))


    def pause_or_raise(self, error: EdgescoreError, attempt: int,
                       deadline: Optional[float]) -> float:
        """Seconds to wait before the next attempt; raises `error` when there is none (not
        retryable, attempts used up, or the wait would pass the call's monotonic deadline)."""
        pause = max(self.backoff(attempt), error.retry_after or 0.0)
        if not self.retryable(error.code, attempt, error.retry_after is not None) or (
                deadline is not None and time.monotonic() + pause >= deadline):
            raise error
        return pause


NO_RETRY = RetryPolicy(max_attempts=1)
