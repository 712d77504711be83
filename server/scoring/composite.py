"""Composite proxies (see proxies/base.py `Composite`, e.g. the ensemble): the members a request
asks for, and the composite's value from its members' values.

Each member's value is turned into its percentile in the space's reference population and the
composite's `combine` joins them; a failed member fails the composite, naming it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

from edgescore.server.errors import FailedPrecondition, InvalidArgument, ServerError, shown
from edgescore.server.proxies import registry
from edgescore.server.proxies.base import Composite, ResolvedSettings, SettingsOverride
from edgescore.server.proxies.settings import resolve_settings
from edgescore.server.scoring.proxy_cache import Served

# (member name, member settings, the value) -> the value's percentile in its reference population
MemberPercentile = Callable[[str, ResolvedSettings, float], float]
# The members' values by name -> a fitted composite's value (for one arch).
Predict = Callable[[dict[str, float]], float]


@dataclass(frozen=True)
class CompositeSettings:
    """A composite's members, each with the settings it resolves to, in request order."""

    name: str
    members: tuple[tuple[str, SettingsOverride, ResolvedSettings], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _, _ in self.members)


@dataclass(frozen=True)
class CompositeOutcome:
    """A composite's answer: its value and each member's percentile, or why it has none."""

    settings: CompositeSettings
    unit: str
    transform: str
    seconds: float
    flags: tuple[str, ...]
    value: Optional[float] = None
    percentiles: dict[str, float] = dataclasses.field(default_factory=dict)
    error: Optional[ServerError] = None


def resolve(composite: Composite, override: SettingsOverride, field: str) -> CompositeSettings:
    """Validate the member list and each member's settings; InvalidArgument names the field."""
    key = composite.members_key
    extra = dict(override.extra or {})
    listed = extra.pop(key, "")
    names = [n.strip() for n in listed.split(",") if n.strip()] if listed else list(
        composite.default_members)
    if not 2 <= len(names) <= composite.max_members or len(set(names)) != len(names):
        raise InvalidArgument(f"{field}.extra[{key}]", f"needs 2 to {composite.max_members} "
                                                       f"distinct proxy names, got {shown(listed)}")
    proxies = []
    for name in names:
        if any(c.name == name for c in registry.all_composites()):
            raise InvalidArgument(f"{field}.extra[{key}]",
                                  f"{shown(name)} is a composite proxy; members are computed ones")
        try:
            proxies.append(registry.get_proxy(name))
        except Exception as exc:  # NotFound: inside a setting it is the request's argument
            raise InvalidArgument(f"{field}.extra[{key}]", str(exc)) from None
    unused = set(extra) - {k for p in proxies for k in p.extra_choices}
    if unused:
        raise InvalidArgument(f"{field}.extra", f"no member knows {sorted(unused)}")
    members = []
    for proxy in proxies:
        own = dataclasses.replace(override, extra={k: v for k, v in extra.items()
                                                   if k in proxy.extra_choices} or None)
        members.append((proxy.name, own, resolve_settings(proxy, own, field)))
    return CompositeSettings(composite.name, tuple(members))


def combine(settings: CompositeSettings, values: dict[str, float],
            percentile: MemberPercentile) -> tuple[float, dict[str, float]]:
    """The composite's value for members of `values`, and each member's percentile."""
    pct = {name: percentile(name, resolved, values[name])
           for name, _, resolved in settings.members}
    return registry.get_composite(settings.name).combine(list(pct.values())), pct


def outcome(settings: CompositeSettings, members: list[Served],
            percentile: Optional[MemberPercentile],
            predict: Optional[Predict] = None) -> CompositeOutcome:
    """The composite's outcome from its members' (`percentile`: None where the server has no
    reference populations; their first use computes them, so call this off the event loop).
    A fitted composite's value is `predict`'s (None: the server has no label set)."""
    composite = registry.get_composite(settings.name)
    computed = [m.outcome for m in members if not m.cached]
    base = CompositeOutcome(settings=settings, unit=composite.unit,
                            transform=composite.transform,
                            seconds=sum(o.seconds for o in computed),
                            flags=tuple(sorted({f for m in members for f in m.outcome.flags})))
    failed = next((m.outcome for m in members if m.outcome.error is not None), None)
    try:
        if failed is not None:
            raise FailedPrecondition(f"member {failed.name} failed: {failed.error.message}")
        values = {m.outcome.name: m.outcome.value for m in members}
        if composite.fitted:
            if predict is None:
                raise FailedPrecondition("this server has no label set (start it with "
                                         "--label-set)")
            value, pct = predict(values), {}
        else:
            if percentile is None:
                raise FailedPrecondition("this server has no reference populations")
            value, pct = combine(settings, values, percentile)
    except ServerError as exc:
        return dataclasses.replace(base, error=exc)
    return dataclasses.replace(base, value=value, percentiles=pct)
