"""Offline evaluation of the proxies against trained accuracy (`edgescore eval proxies`).

Server-side code: it computes proxies in-process with torch, so it needs the `[server]` extra.
"""

from __future__ import annotations

from .nb201_eval import DATASETS, EvalConfig, EvalError, EvalRun, run_eval

__all__ = ["DATASETS", "EvalConfig", "EvalError", "EvalRun", "run_eval"]
