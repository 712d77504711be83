"""edgescore client SDK: `Client(target).score(arch, proxies=..., devices=...)`.

Needs only grpcio and protobuf (the `[client]` extra); never imports torch or server code.
`AsyncClient` is the asyncio twin; `score_many` streams many candidates with bounded
concurrency; `to_dataframe` turns results into a pandas DataFrame (pandas optional).
"""

from edgescore.client.aio import AsyncClient
from edgescore.client.api import Client
from edgescore.client.errors import EdgescoreError
from edgescore.client.results import (
    BatchItem,
    DeviceClass,
    Latency,
    ObjectiveValue,
    ProxyValue,
    ScoreResult,
    to_dataframe,
)
from edgescore.client.retry import NO_RETRY, RetryPolicy

__all__ = ["NO_RETRY", "AsyncClient", "BatchItem", "Client", "DeviceClass", "EdgescoreError",
           "Latency", "ObjectiveValue", "ProxyValue", "RetryPolicy", "ScoreResult",
           "to_dataframe"]
