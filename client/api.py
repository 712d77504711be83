"""The synchronous SDK client."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Callable

import grpc

from edgescore.client.channel import CHANNEL_OPTIONS, metadata, resolve_credentials
from edgescore.client.errors import EdgescoreError
from edgescore.client.requests import Arch, ProxyArg, score_request
from edgescore.client.results import BatchItem, DeviceClass, ScoreResult
from edgescore.client.retry import RetryPolicy
from edgescore.v1 import fleet_pb2, fleet_pb2_grpc, scoring_pb2, scoring_pb2_grpc

DEFAULT_MAX_IN_FLIGHT = 8


class Client:
    """`Client("host:port")`: score candidates, list proxies, spaces and devices.

    `timeout` is each call's deadline in seconds, retries included (None: no deadline).
    `retry` says which failures are tried again and how long to back off (default: UNAVAILABLE,
    up to 8 attempts): a server restart in the middle of a search is ridden out.
    TLS: pass `tls_ca="ca.pem"` (plus `tls_cert` / `tls_key` for mutual TLS), or ready-made
    `credentials`; without either the channel is plain text. `token`: the server's API token.

    Every failed call raises `EdgescoreError` carrying the gRPC status code and details.
    """

    def __init__(self, target: str, token: str | None = None, timeout: float | None = 600.0,
                 credentials: grpc.ChannelCredentials | None = None, *, tls_ca: str = "",
                 tls_cert: str = "", tls_key: str = "",
                 retry: RetryPolicy | None = None) -> None:
        credentials = resolve_credentials(credentials, tls_ca, tls_cert, tls_key)
        self._channel = (grpc.secure_channel(target, credentials, CHANNEL_OPTIONS) if credentials
                         else grpc.insecure_channel(target, CHANNEL_OPTIONS))
        self._scoring = scoring_pb2_grpc.ScoringServiceStub(self._channel)
        self._fleet = fleet_pb2_grpc.FleetServiceStub(self._channel)
        self._token = token
        self.timeout = timeout
        self.retry = retry or RetryPolicy()

    def _call(self, method: Callable, request: Any, request_id: str = "") -> Any:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        attempt = 0
        while True:
            attempt += 1
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return method(request, timeout=left, metadata=metadata(self._token, request_id))
            except grpc.RpcError as exc:
                error = EdgescoreError.from_rpc_error(exc)
            pause = self.retry.pause_or_raise(error, attempt, deadline)
            time.sleep(pause)

    def score(self, arch: Arch, proxies: Sequence[ProxyArg] = (), devices: Sequence[str] = (),
              **options: Any) -> ScoreResult:
        """Proxy scores and measured latencies of one candidate.

        `arch`: a spec of `space` (default "nb201": the cell string; nats_sss: "c0:c1:c2:c3:c4";
        fbnet: the 22 layer ops separated by spaces, "k3_e6 skip ..."; nb101 / macro / vit: a
        dict with the v1 message's fields), ONNX bytes, or an ArchSpec.
        `proxies`: names, or v1 ProxyRequests where one proxy needs its own settings (e.g. the
        "ensemble" with `extra={"proxies": "synflow,naswot"}`). Options: `space`, `seed`,
        `proxy_settings` (ProxySettings fields for every proxy: batch_size, init, repeats...),
        `measurement` (MeasurementSettings fields for every device), `num_classes`,
        `input_resolution`, `dataset_id` (from `register_dataset`: every data-using proxy runs
        on that batch), `latency_timeout`, `request_id`, `objective` (v1 Objective: constraint,
        mnas, pareto, weighted_rank), `allow_predicted` (a class with no agent online is answered
        by the latency predictor: provenance PREDICTED, `uncertainty_ms`), `no_cache` (recompute
        and remeasure), `priority` (latency jobs of a higher priority go first on each class).
        """
        request = score_request(arch, proxies, devices, **options)
        request.request_id = request.request_id or uuid.uuid4().hex
        return ScoreResult.from_pb(self._call(self._scoring.Score, request, request.request_id))

    def score_many(self, archs: Iterable[Arch], proxies: Sequence[ProxyArg] = (),
                   devices: Sequence[str] = (), *, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
                   **options: Any) -> Iterator[BatchItem]:
        """Score every arch with at most `max_in_flight` requests outstanding, yielding a
        `BatchItem` (index, arch, result or error) per arch as each completes: completion order,
        not input order. `archs` is read lazily, so it may be a generator of millions. Each
        request is retried like any call (a server restart costs time, not results); an arch
        that fails for good comes back with its `error`, and the others go on."""
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        items = enumerate(archs)
        pool = ThreadPoolExecutor(max_in_flight, thread_name_prefix="edgescore-score")
        pending: dict[Future, tuple[int, Arch]] = {}

        def one(arch: Arch) -> ScoreResult:
            return self.score(arch, proxies, devices, **options)

        def fill() -> None:
            for index, arch in items:
                pending[pool.submit(one, arch)] = (index, arch)
                if len(pending) >= max_in_flight:
                    return

        try:
            fill()
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    index, arch = pending.pop(future)
                    yield BatchItem.from_future(index, arch, future)
                fill()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

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
        """Raw ScoreStream: items come back as they complete, correlated by request_id. Not
        retried (a broken stream cannot tell which items were done): `score_many` is."""
        try:
            yield from self._scoring.ScoreStream(iter(requests), timeout=self.timeout,
                                                 metadata=metadata(self._token))
        except grpc.RpcError as exc:
            raise EdgescoreError.from_rpc_error(exc) from None

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

