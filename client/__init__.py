"""edgescore client SDK: `Client(target).score(arch, proxies=..., devices=...)`.

Needs only grpcio and protobuf (the `[client]` extra); never imports torch or server code.
"""

from edgescore.client.api import Client
from edgescore.client.errors import EdgescoreError
from edgescore.client.results import DeviceClass, Latency, ObjectiveValue, ProxyValue, ScoreResult

__all__ = ["Client", "DeviceClass", "EdgescoreError", "Latency", "ObjectiveValue", "ProxyValue",
           "ScoreResult"]
