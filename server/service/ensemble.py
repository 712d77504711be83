"""The `ensemble` proxy: the rank-average of chosen proxies, requestable like any other.

Each member's value is turned into its percentile in the space's reference population (so members
on incomparable scales weigh alike) and the ensemble is their mean, in (0, 100), higher better.
The members come from `extra proxies=a,b,c` (default: the hardware study's three); the other
settings of the request apply to every member, and an extra key goes to the members that know it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

from edgescore.server.errors import FailedPrecondition, InvalidArgument, ServerError
from edgescore.server.proxies import engine, registry
from edgescore.server.proxies.base import ResolvedSettings, SettingsOverride
from edgescore.server.spaces.base import ParsedArch
from edgescore.v1 import common_pb2, scoring_pb2

NAME = "ensemble"
MEMBERS_KEY = "proxies"
DEFAULT_MEMBERS = ("synflow", "jacob_cov", "naswot")
MAX_MEMBERS = 8
UNIT = "percentile"
TRANSFORM = "mean of the members' percentiles in the space's reference population"
DESCRIPTION = (
    "Rank-average ensemble: the mean of the chosen proxies' percentiles in the space's reference "
    f"population, in (0, 100). extra {MEMBERS_KEY}=a,b,c picks the members (default "
    f"{','.join(DEFAULT_MEMBERS)}); the other settings apply to each member.")


@dataclass(frozen=True)
class EnsembleSettings:
    """The members, each with the settings it resolves to, in request order."""

    members: tuple[tuple[str, SettingsOverride, ResolvedSettings], ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _, _ in self.members)


def resolve(override: SettingsOverride, field: str) -> EnsembleSettings:
    """Validate the member list and each member's settings; InvalidArgument names the field."""
    extra = dict(override.extra or {})
    listed = extra.pop(MEMBERS_KEY, "")
    names = [n.strip() for n in listed.split(",") if n.strip()] if listed else list(
        DEFAULT_MEMBERS)
    if not 2 <= len(names) <= MAX_MEMBERS or len(set(names)) != len(names):
        raise InvalidArgument(f"{field}.extra[{MEMBERS_KEY}]",
                              f"needs 2 to {MAX_MEMBERS} distinct proxy names, got {listed!r}")
    proxies = []
    for name in names:
        if name == NAME:
            raise InvalidArgument(f"{field}.extra[{MEMBERS_KEY}]", "an ensemble cannot contain one")
        try:
            proxies.append(registry.get_proxy(name))
        except Exception as exc:  # NotFound: inside a setting it is the request's argument
            raise InvalidArgument(f"{field}.extra[{MEMBERS_KEY}]", str(exc)) from None
    unused = set(extra) - {k for p in proxies for k in p.extra_choices}
    if unused:
        raise InvalidArgument(f"{field}.extra", f"no member knows {sorted(unused)}")
    members = []
    for proxy in proxies:
        own = dataclasses.replace(override, extra={k: v for k, v in extra.items()
                                                   if k in proxy.extra_choices} or None)
        members.append((proxy.name, own, engine.resolve_settings(proxy, own, field)))
    return EnsembleSettings(tuple(members))


def info() -> scoring_pb2.ProxyInfo:
    """The ensemble's ListProxies entry."""
    members = resolve(SettingsOverride(), NAME).members
    return scoring_pb2.ProxyInfo(
        name=NAME, description=DESCRIPTION, unit=UNIT, transform=TRANSFORM,
        needs_data=any(registry.get_proxy(n).needs_data for n, _, _ in members),
        needs_labels=any(registry.get_proxy(n).needs_labels for n, _, _ in members),
        reference="Li et al., zero-shot NAS survey (TPAMI 2024): proxy ensembles",
        defaults=common_pb2.ProxySettings(extra={MEMBERS_KEY: ",".join(DEFAULT_MEMBERS)}))


def result(arch: ParsedArch, settings: EnsembleSettings,
           members: list[common_pb2.ProxyResult], populations: Optional[Any]
           ) -> common_pb2.ProxyResult:
    """The ensemble's result from its members' results (`populations`: the server's reference
    populations; their first use computes them, so call this off the event loop)."""
    out = common_pb2.ProxyResult(
        name=NAME, unit=UNIT, transform=TRANSFORM, provenance=common_pb2.COMPUTED,
        settings=common_pb2.ProxySettings(extra={MEMBERS_KEY: ",".join(settings.names)}),
        compute_seconds=sum(m.compute_seconds for m in members
                            if m.provenance == common_pb2.COMPUTED),
        flags=sorted({f for m in members for f in m.flags}))
    failed = next((m for m in members if m.status.code != 0), None)
    try:
        if failed is not None:
            raise FailedPrecondition(f"member {failed.name} failed: {failed.status.message}")
        if populations is None:
            raise FailedPrecondition("this server has no reference populations")
        value, pct = populations.ensemble(arch, settings, {m.name: m.value for m in members})
    except ServerError as exc:
        out.status.code = exc.code.value[0]
        out.status.message = f"{NAME}: {exc.message}"
        return out
    out.value = value
    out.components.update(pct)
    return out
