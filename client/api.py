"""The synchronous SDK client."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import grpc

import edgescore
from edgescore.client.errors import EdgescoreError
from edgescore.client.results import DeviceClass, ScoreResult
from edgescore.v1 import common_pb2, fleet_pb2, fleet_pb2_grpc, scoring_pb2, scoring_pb2_grpc

MAX_MESSAGE_BYTES = 256 * 1024 * 1024

_FORMATS = {"onnx": common_pb2.ONNX, "tflite": common_pb2.TFLITE}
_PRECISIONS = {"fp32": common_pb2.FP32, "int8": common_pb2.INT8}


def arch_spec(arch: str | common_pb2.ArchSpec, num_classes: int = 0,
              input_resolution: int = 0) -> common_pb2.ArchSpec:
    """An ArchSpec from an NB201 string (or an ArchSpec passed through)."""
    if isinstance(arch, common_pb2.ArchSpec):
        return arch
    return common_pb2.ArchSpec(nb201=arch, num_classes=num_classes,
                               input_resolution=input_resolution)


def measurement_settings(settings: Mapping[str, Any] | None) -> common_pb2.MeasurementSettings:
    s = dict(settings or {})
    if "format" in s:
        s["format"] = _FORMATS[str(s["format"]).lower()]
    if "precision" in s:
        s["precision"] = _PRECISIONS[str(s["precision"]).lower()]
    return common_pb2.MeasurementSettings(**s)


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


class Client:
    """`Client("host:port")`: score candidates, list proxies, spaces and devices.

    TLS: pass `tls_ca="ca.pem"` (plus `tls_cert` / `tls_key` for mutual TLS), or ready-made
    `credentials`; without either the channel is plain text.

    Every failed call raises `EdgescoreError` carrying the gRPC status code and details.
    """

    def __init__(self, target: str, token: str | None = None, timeout: float | None = 600.0,
                 credentials: grpc.ChannelCredentials | None = None, *, tls_ca: str = "",
                 tls_cert: str = "", tls_key: str = "") -> None:
        options = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                   ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                   ("grpc.keepalive_time_ms", 30_000)]
        if credentials is None and (tls_ca or tls_cert):
            credentials = tls_credentials(tls_ca, tls_cert, tls_key)
        self._channel = (grpc.secure_channel(target, credentials, options) if credentials
                         else grpc.insecure_channel(target, options))
        self._scoring = scoring_pb2_grpc.ScoringServiceStub(self._channel)
        self._fleet = fleet_pb2_grpc.FleetServiceStub(self._channel)
        self._metadata = [(edgescore.TOKEN_METADATA_KEY, token)] if token else None
        self.timeout = timeout

    def _call(self, method: Any, request: Any) -> Any:
        try:
            return method(request, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise EdgescoreError.from_rpc_error(exc) from None

    def score(
        self,
        arch: str | common_pb2.ArchSpec,
        proxies: Sequence[str | common_pb2.ProxyRequest] = (),
        devices: Sequence[str] = (),
        *,
        seed: int | None = None,
        proxy_settings: Mapping[str, Any] | None = None,
        measurement: Mapping[str, Any] | None = None,
        num_classes: int = 0,
        input_resolution: int = 0,
        dataset_id: str = "",
        latency_timeout: float = 0.0,
        request_id: str = "",
        objective: common_pb2.Objective | None = None,
        allow_predicted: bool = False,
        no_cache: bool = False,
        priority: int = 0,
    ) -> ScoreResult:
        """Proxy scores and measured latencies of one candidate.

        `proxies`: names, or v1 ProxyRequests where one proxy needs its own settings (e.g. the
        "ensemble" with `extra={"proxies": "synflow,naswot"}`).
        `proxy_settings` holds ProxySettings fields applied to every proxy (batch_size, init,
        repeats...); `measurement` holds MeasurementSettings fields for every device.
        `dataset_id` (from `register_dataset`) makes every data-using proxy run on that batch.
        `objective` (v1 Objective: constraint, mnas, pareto) combines them into
        `ScoreResult.objective`. `allow_predicted`: a class with no agent online is answered by
        the latency predictor (provenance PREDICTED, `uncertainty_ms`); `no_cache`: recompute and
        remeasure instead of serving stored results. `priority`: latency jobs of a higher
        priority are dispatched first on each device class (FIFO among equals).
        """
        defaults = common_pb2.ProxySettings(**dict(proxy_settings or {}))
        if seed is not None:
            defaults.seed = seed
        if dataset_id:
            defaults.data.CopyFrom(common_pb2.DataSource(kind=common_pb2.DataSource.REGISTERED,
                                                         dataset_id=dataset_id))
        settings = measurement_settings(measurement)
        request = scoring_pb2.ScoreRequest(
            request_id=request_id,
            arch=arch_spec(arch, num_classes, input_resolution),
            proxies=[p if isinstance(p, common_pb2.ProxyRequest) else common_pb2.ProxyRequest(
                name=p) for p in proxies],
            proxy_defaults=defaults,
            devices=[common_pb2.DeviceTarget(device_class=d, settings=settings) for d in devices],
            latency_timeout_seconds=latency_timeout,
            objective=objective,
            allow_predicted=allow_predicted,
            no_cache=no_cache,
            priority=priority,
        )
        return ScoreResult.from_pb(self._call(self._scoring.Score, request))

    def register_dataset(self, images: Any, labels: Sequence[int] | Any = (),
                         name: str = "") -> str:
        """Upload a calibration batch once; returns its id (sha256 of the content).

        `images`: array-like (N, C, H, W), already normalised as the network expects; sent as
        float32 little-endian. `labels`: N class indices, or empty for none. Needs numpy.
        """
        # Imported here: the [client] extra has no numpy, and only this method needs it.
        import numpy as np

        array = np.ascontiguousarray(images, dtype="<f4")
        label_list = [int(v) for v in np.asarray(labels).reshape(-1)]
        request = scoring_pb2.RegisterDatasetRequest(
            name=name, images=array.tobytes(), shape=list(array.shape), labels=label_list)
        return self._call(self._scoring.RegisterDataset, request).dataset_id

    def proxies(self) -> list[scoring_pb2.ProxyInfo]:
        return list(self._call(self._scoring.ListProxies, scoring_pb2.ListProxiesRequest()).proxies)

    def spaces(self) -> list[scoring_pb2.SearchSpaceInfo]:
        request = scoring_pb2.ListSearchSpacesRequest()
        return list(self._call(self._scoring.ListSearchSpaces, request).spaces)

    def devices(self) -> list[DeviceClass]:
        response = self._call(self._fleet.ListDevices, fleet_pb2.ListDevicesRequest())
        return [DeviceClass.from_pb(d) for d in response.devices]

    def score_stream(self, requests: Iterable[scoring_pb2.ScoreRequest]
                     ) -> Iterable[scoring_pb2.ScoreStreamItem]:
        """Raw ScoreStream: items come back as they complete, correlated by request_id."""
        try:
            yield from self._scoring.ScoreStream(iter(requests), timeout=self.timeout,
                                                 metadata=self._metadata)
        except grpc.RpcError as exc:
            raise EdgescoreError.from_rpc_error(exc) from None

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
