"""A proxy's settings for one request: its defaults overlaid with the request's, validated."""

from __future__ import annotations

from typing import Optional

from edgescore.server.errors import InvalidArgument
from edgescore.server.proxies import data
from edgescore.server.proxies.base import (
    DATA_KINDS,
    INITS,
    Proxy,
    ResolvedSettings,
    SettingsOverride,
)

BATCH_SIZE_RANGE = (1, 4096)
REPEATS_RANGE = (1, 100)
SEED_RANGE = (0, 2**63 - 1)
MAX_EXTRA_CHARS = 256


def _check_range(field: str, value: int, bounds: tuple[int, int]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(field, f"must be an integer, got {value!r}")
    if not bounds[0] <= value <= bounds[1]:
        raise InvalidArgument(field, f"must be in {bounds[0]}..{bounds[1]}, got {value}")
    return value


def resolve_settings(proxy: Proxy, override: Optional[SettingsOverride],
                     field: str = "settings") -> ResolvedSettings:
    """The proxy's defaults overlaid with `override`, validated; `field` prefixes error fields."""
    o = override or SettingsOverride()

    def pick(value, default):
        return default if value is None else value

    batch_size = _check_range(f"{field}.batch_size", pick(o.batch_size, proxy.batch_size),
                              BATCH_SIZE_RANGE)
    seed = _check_range(f"{field}.seed", pick(o.seed, proxy.seed), SEED_RANGE)
    repeats = _check_range(f"{field}.repeats", pick(o.repeats, proxy.repeats), REPEATS_RANGE)
    if seed + repeats - 1 > SEED_RANGE[1]:
        raise InvalidArgument(f"{field}.seed", "seed + repeats - 1 overflows the seed range")
    init = pick(o.init, proxy.init)
    if init not in INITS:
        raise InvalidArgument(f"{field}.init", f"unknown init {init!r}; known: {', '.join(INITS)}")
    data_kind = pick(o.data_kind, proxy.data_kind)
    if data_kind not in DATA_KINDS:
        raise InvalidArgument(f"{field}.data_kind",
                              f"unknown data kind {data_kind!r}; known: {', '.join(DATA_KINDS)}")
    dataset_id = pick(o.dataset_id, "")
    if data_kind == "registered" and not dataset_id:
        raise InvalidArgument(f"{field}.dataset_id", "data kind 'registered' needs a dataset_id")
    extra = dict(pick(o.extra, {}))
    for key, value in extra.items():
        if key not in proxy.extra_choices:
            known = ", ".join(proxy.extra_choices) or "none"
            raise InvalidArgument(f"{field}.extra", f"unknown key {key!r} for {proxy.name}; "
                                                    f"known: {known}")
        if not isinstance(value, str) or len(value) > MAX_EXTRA_CHARS:
            raise InvalidArgument(f"{field}.extra[{key}]", "must be a string of at most "
                                                           f"{MAX_EXTRA_CHARS} characters")
        allowed = proxy.extra_choices[key]
        if allowed and value not in allowed:
            raise InvalidArgument(f"{field}.extra[{key}]",
                                  f"unknown value {value!r}; known: {', '.join(allowed)}")
    for key, allowed in proxy.extra_choices.items():
        if allowed and key not in extra:
            extra[key] = allowed[0]  # what the proxy runs with, echoed as settings
    if not proxy.needs_data:
        # Data-free proxies run on their own fixed input; report that, not an unused request.
        batch_size, data_kind, dataset_id = proxy.batch_size, proxy.data_kind, ""
    limit = data.max_batch_size(data_kind)
    if limit is not None and batch_size > limit:
        raise InvalidArgument(f"{field}.batch_size",
                              f"data kind {data_kind!r} supplies at most {limit} images")
    # Sorted: equal settings must look equal (call dedupe and population keys use the repr).
    return ResolvedSettings(batch_size=batch_size, seed=seed, init=init, repeats=repeats,
                            data_kind=data_kind, dataset_id=dataset_id,
                            extra=dict(sorted(extra.items())))
