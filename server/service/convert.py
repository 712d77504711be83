"""Conversions between the v1 messages and the server's domain objects."""

from __future__ import annotations

from typing import Union

from edgescore.server.errors import InvalidArgument
from edgescore.server.proxies import registry
from edgescore.server.proxies.base import Composite, Proxy, ResolvedSettings, SettingsOverride
from edgescore.server.proxies.engine import ProxyOutcome
from edgescore.server.proxies.settings import resolve_settings
from edgescore.server.scoring.composite import CompositeOutcome
from edgescore.server.scoring.proxy_cache import Served
from edgescore.v1 import common_pb2, scoring_pb2

_DATA_KINDS = {
    common_pb2.DataSource.SYNTHETIC: "synthetic",
    common_pb2.DataSource.BUNDLED_CIFAR10: "cifar10",
    common_pb2.DataSource.REGISTERED: "registered",
}
_DATA_KINDS_BACK = {v: k for k, v in _DATA_KINDS.items()}


def override_from_pb(
    own: common_pb2.ProxySettings, defaults: common_pb2.ProxySettings
) -> SettingsOverride:
    """Per-proxy settings win field by field over the request's defaults; zero means unset."""

    def pick(name: str) -> object:
        for source in (own, defaults):
            value = getattr(source, name)
            if value:
                return value
        return None

    seed = own.seed if own.HasField("seed") else (
        defaults.seed if defaults.HasField("seed") else None)
    data = own.data if own.data.kind else defaults.data
    if data.kind and data.kind not in _DATA_KINDS:
        # An enum number from a newer contract: refuse it rather than fall back to the default.
        where = "settings" if own.data.kind else "proxy_defaults"
        raise InvalidArgument(f"{where}.data.kind", f"unknown data source kind {data.kind}")
    return SettingsOverride(
        batch_size=pick("batch_size"),
        seed=seed,
        init=pick("init"),
        repeats=pick("repeats"),
        data_kind=_DATA_KINDS.get(data.kind),
        dataset_id=data.dataset_id or None,
        extra={**dict(defaults.extra), **dict(own.extra)} or None,
    )


def settings_to_pb(settings: ResolvedSettings) -> common_pb2.ProxySettings:
    return common_pb2.ProxySettings(
        batch_size=settings.batch_size,
        seed=settings.seed,
        init=settings.init,
        repeats=settings.repeats,
        data=common_pb2.DataSource(kind=_DATA_KINDS_BACK.get(settings.data_kind, 0),
                                   dataset_id=settings.dataset_id or ""),
        extra=dict(settings.extra),
    )


def proxy_result_pb(outcome: ProxyOutcome, provenance: int = common_pb2.COMPUTED
                    ) -> common_pb2.ProxyResult:
    result = common_pb2.ProxyResult(
        name=outcome.name,
        unit=outcome.unit,
        transform=outcome.transform,
        provenance=provenance,
        settings=settings_to_pb(outcome.settings),
        compute_seconds=outcome.seconds,
        flags=list(outcome.flags),
    )
    if outcome.error is not None:
        result.status.code = outcome.error.code.value[0]
        result.status.message = outcome.error.message
    else:
        result.value = outcome.value
    return result


def served_result_pb(served: Union[Served, CompositeOutcome]) -> common_pb2.ProxyResult:
    if isinstance(served, CompositeOutcome):
        return composite_result_pb(served)
    return proxy_result_pb(served.outcome,
                           common_pb2.CACHED if served.cached else common_pb2.COMPUTED)


def composite_result_pb(outcome: CompositeOutcome) -> common_pb2.ProxyResult:
    name = outcome.settings.name
    members_key = registry.get_composite(name).members_key
    result = common_pb2.ProxyResult(
        name=name, unit=outcome.unit, transform=outcome.transform,
        provenance=common_pb2.COMPUTED,
        settings=common_pb2.ProxySettings(extra={members_key: ",".join(outcome.settings.names)}),
        compute_seconds=outcome.seconds, flags=list(outcome.flags))
    if outcome.error is not None:
        result.status.code = outcome.error.code.value[0]
        result.status.message = f"{name}: {outcome.error.message}"
    else:
        result.value = outcome.value
        result.components.update(outcome.percentiles)
    return result


def proxy_info_pb(proxy: Proxy) -> scoring_pb2.ProxyInfo:
    """A computed proxy's ListProxies entry."""
    return scoring_pb2.ProxyInfo(
        name=proxy.name, description=proxy.description, unit=proxy.unit,
        transform=proxy.transform, needs_data=proxy.needs_data,
        needs_labels=proxy.needs_labels, reference=proxy.reference,
        defaults=settings_to_pb(resolve_settings(proxy, None)))


def composite_info_pb(composite: Composite) -> scoring_pb2.ProxyInfo:
    """A composite's ListProxies entry: it needs data (or labels) where a default member does."""
    members = [registry.get_proxy(name) for name in composite.default_members]
    return scoring_pb2.ProxyInfo(
        name=composite.name, description=composite.description, unit=composite.unit,
        transform=composite.transform, needs_data=any(m.needs_data for m in members),
        needs_labels=any(m.needs_labels for m in members), reference=composite.reference,
        defaults=common_pb2.ProxySettings(
            extra={composite.members_key: ",".join(composite.default_members)}))
