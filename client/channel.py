"""Channel options, credentials and call metadata shared by `Client` and `AsyncClient`."""

from __future__ import annotations

import grpc

import edgescore
from edgescore.transport import CHANNEL_OPTIONS as CHANNEL_OPTIONS  # for Client, AsyncClient

REQUEST_ID_METADATA_KEY = "x-request-id"


def tls_credentials(ca: str = "", cert: str = "", key: str = "") -> grpc.ChannelCredentials:
    """TLS channel credentials from PEM files.

    `ca`: the CA that signed the server certificate (empty or "default": gRPC's bundled roots);
    `cert` + `key`: this client's certificate for a server that requires mutual TLS.
    """
    def read(path: str) -> bytes | None:
        if not path or path == "default":
            return None
        with open(path, "rb") as fh:
            return fh.read()

    return grpc.ssl_channel_credentials(root_certificates=read(ca), private_key=read(key),
                                        certificate_chain=read(cert))


def resolve_credentials(credentials: grpc.ChannelCredentials | None, tls_ca: str,
                        tls_cert: str, tls_key: str) -> grpc.ChannelCredentials | None:
    if credentials is None and (tls_ca or tls_cert):
        return tls_credentials(tls_ca, tls_cert, tls_key)
    return credentials


def metadata(token: str | None, request_id: str = "") -> list[tuple[str, str]] | None:
    """The fleet/API token and the request id (the server logs it with every line it writes)."""
    items = []
    if token:
        items.append((edgescore.TOKEN_METADATA_KEY, token))
    if request_id:
        items.append((REQUEST_ID_METADATA_KEY, request_id))
    return items or None
