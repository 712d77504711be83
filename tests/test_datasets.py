"""Registered datasets: the store's rules in-process, then RegisterDataset through a real server."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import numpy as np
import pytest
import torch

from edgescore.client import Client, EdgescoreError
from edgescore.server.errors import InvalidArgument, NotFound, ResourceExhausted
from edgescore.server.proxies import data, datasets, engine
from edgescore.server.proxies.base import SettingsOverride
from edgescore.server.spaces.nb201 import SPACE
from edgescore.v1 import scoring_pb2

ARCH = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|"
        "+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|")
N_IMAGES = 70
CAP = 1_000_000  # per upload: 70 CIFAR-sized images (860,160 bytes + labels) fit, 90 do not


def images(n: int = N_IMAGES, side: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 3, side, side)).astype(np.float32)


def labels(n: int = N_IMAGES) -> np.ndarray:
    return np.arange(n) % 10


# -- the store, in-process ------------------------------------------------------------------------


@pytest.fixture()
def store() -> Iterator[datasets.DatasetStore]:
    yield datasets.DatasetStore(max_dataset_bytes=CAP, max_store_bytes=2 * CAP)


def test_id_is_the_content_hash(store: datasets.DatasetStore) -> None:
    x = images(4)
    a = store.register("a", x.tobytes(), x.shape, [0, 1, 2, 3])
    assert a == store.register("other name", x.tobytes(), x.shape, [0, 1, 2, 3])
    assert len(a) == 64 and len(store) == 1
    assert store.register("a", x.tobytes(), x.shape, [0, 1, 2, 4]) != a
    assert store.register("a", x.tobytes(), x.shape) != a
    entry = store.get(a)
    assert torch.equal(entry.x, torch.from_numpy(x)) and entry.y.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("shape", "payload", "label_list", "field"),
    [
        ((4, 3, 8), 4 * 3 * 8 * 8 * 4, [], "shape"),
        ((0, 3, 8, 8), 0, [], "shape"),
        ((4, 3, 8, 8), 4 * 3 * 8 * 8 * 4 - 4, [], "images"),
        ((4, 3, 8, 8), 4 * 3 * 8 * 8 * 4, [0, 1, 2], "labels"),
        ((4, 3, 8, 8), 4 * 3 * 8 * 8 * 4, [0, 1, 2, -1], "labels"),
    ],
)
def test_bad_uploads_name_the_field(store: datasets.DatasetStore, shape: tuple, payload: int,
                                    label_list: list, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        store.register("bad", b"\0" * payload, shape, label_list)
    assert info.value.field == field


def test_non_finite_values_are_rejected(store: datasets.DatasetStore) -> None:
    x = images(2, side=8)
    x[1, 2, 3, 4] = np.inf
    with pytest.raises(InvalidArgument, match="inf") as info:
        store.register("bad", x.tobytes(), x.shape)
    assert info.value.field == "images"


def test_caps(store: datasets.DatasetStore) -> None:
    big = images(90)
    with pytest.raises(ResourceExhausted, match="1,105,920 bytes.*cap of 1,000,000"):
        store.register("big", big.tobytes(), big.shape)
    # Past the store cap, the least recently used dataset goes.
    ids = [store.register(str(i), images(seed=i).tobytes(), (N_IMAGES, 3, 32, 32))
           for i in range(2)]
    store.get(ids[0])  # now the most recently used
    third = store.register("2", images(seed=2).tobytes(), (N_IMAGES, 3, 32, 32))
    assert len(store) == 2 and store.total_bytes <= 2 * CAP
    store.get(ids[0]), store.get(third)
    with pytest.raises(NotFound, match="register it again"):
        store.get(ids[1])


def test_registered_batch_is_seeded_and_resized(monkeypatch: pytest.MonkeyPatch) -> None:
    store = datasets.DatasetStore()
    monkeypatch.setattr(datasets, "STORE", store)
    x = images()
    did = store.register("", x.tobytes(), x.shape, list(labels()))
    a = data.calibration_batch("registered", 16, 5, (3, 32, 32), 10, dataset_id=did)
    b = data.calibration_batch("registered", 16, 5, (3, 32, 32), 10, dataset_id=did)
    assert a.flags == () and len(set(a.indices)) == 16
    assert torch.equal(a.x, b.x) and torch.equal(a.x, torch.from_numpy(x[list(a.indices)]))
    assert a.y.tolist() == [i % 10 for i in a.indices]
    other = data.calibration_batch("registered", 16, 6, (3, 32, 32), 10, dataset_id=did)
    assert other.indices != a.indices
    small = data.calibration_batch("registered", 16, 5, (3, 16, 16), 10, dataset_id=did)
    assert small.x.shape == (16, 3, 16, 16) and small.flags == (data.STAND_IN_FLAG,)
    with pytest.raises(InvalidArgument, match="holds 70 images"):
        data.calibration_batch("registered", 71, 5, (3, 32, 32), 10, dataset_id=did)
    with pytest.raises(NotFound):
        data.calibration_batch("registered", 8, 5, (3, 32, 32), 10, dataset_id="0" * 64)
    unlabelled = store.register("", x.tobytes(), x.shape)
    c = data.calibration_batch("registered", 8, 5, (3, 32, 32), 10, dataset_id=unlabelled)
    assert c.flags == (data.RANDOM_LABELS_FLAG,) and int(c.y.max()) < 10


# -- through a real server ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator:
    from edgescore.client.launcher import LocalStack

    args = ["--dataset-max-bytes", str(CAP), "--dataset-store-bytes", str(4 * CAP)]
    with LocalStack(agents={}, server_args=args) as s:
        yield s


@pytest.mark.slow
def test_register_and_score_naswot_on_it(server, monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = images(), labels()
    with Client(server.target) as client:
        did = client.register_dataset(x, y, name="noise")
        r = client.score(ARCH, ["naswot", "params"], seed=3, dataset_id=did,
                         proxy_settings={"batch_size": 32})
        small = client.score(ARCH, ["naswot"], seed=3, dataset_id=did, input_resolution=16,
                             proxy_settings={"batch_size": 32})
    naswot = r.proxies["naswot"]
    assert naswot.ok, naswot.message
    assert naswot.settings["data"] == {"kind": "REGISTERED", "datasetId": did}
    assert naswot.settings["batchSize"] == 32 and "stand_in_data" not in naswot.flags
    assert r.proxies["params"].ok  # data-free: untouched by the dataset
    assert small.proxies["naswot"].ok and "stand_in_data" in small.proxies["naswot"].flags

    # The same content gives the same id in-process, and the same batch gives the same value.
    store = datasets.DatasetStore()
    monkeypatch.setattr(datasets, "STORE", store)
    assert store.register("", x.tobytes(), x.shape, list(y)) == did
    arch = SPACE.parse(ARCH)
    [local] = engine.compute_proxies(SPACE, arch, [("naswot", SettingsOverride(
        seed=3, batch_size=32, data_kind="registered", dataset_id=did))])
    assert local.value == naswot.value


@pytest.mark.slow
def test_request_level_dataset_errors(server) -> None:
    x = images()
    with Client(server.target) as client:
        did = client.register_dataset(x, labels() * 10)  # labels up to 90
        with pytest.raises(EdgescoreError) as info:
            client.score(ARCH, ["naswot"], dataset_id="f" * 64)
        assert info.value.code == grpc.StatusCode.NOT_FOUND
        assert "dataset_id" in info.value.details
        with pytest.raises(EdgescoreError) as info:  # naswot's default batch is 128 > 70
            client.score(ARCH, ["naswot"], dataset_id=did)
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "batch_size" in info.value.details and "70 images" in info.value.details
        with pytest.raises(EdgescoreError) as info:
            client.score(ARCH, ["naswot"], dataset_id=did, proxy_settings={"batch_size": 8})
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "label 90" in info.value.details
        assert client.score(ARCH, ["naswot"], dataset_id=did, num_classes=100,
                            proxy_settings={"batch_size": 8}).proxies["naswot"].ok


@pytest.mark.slow
@pytest.mark.parametrize(
    ("request_kw", "code", "needle"),
    [
        ({"images": b"\0" * 48, "shape": [1, 3, 2]}, grpc.StatusCode.INVALID_ARGUMENT, "shape"),
        ({"images": b"\0" * 44, "shape": [1, 3, 2, 2]}, grpc.StatusCode.INVALID_ARGUMENT,
         "images: 44 bytes"),
        ({"images": np.full((1, 3, 2, 2), np.nan, np.float32).tobytes(), "shape": [1, 3, 2, 2]},
         grpc.StatusCode.INVALID_ARGUMENT, "not finite"),
        ({"images": b"\0" * 48, "shape": [1, 3, 2, 2], "labels": [1, 2]},
         grpc.StatusCode.INVALID_ARGUMENT, "labels: 2 labels for 1 images"),
        ({"images": images(90).tobytes(), "shape": [90, 3, 32, 32]},
         grpc.StatusCode.RESOURCE_EXHAUSTED, "1,105,920 bytes, over the cap of 1,000,000"),
    ],
)
def test_bad_uploads(server, request_kw: dict, code: grpc.StatusCode, needle: str) -> None:
    with Client(server.target) as client:
        with pytest.raises(EdgescoreError) as info:
            client._call(client._scoring.RegisterDataset,
                         scoring_pb2.RegisterDatasetRequest(name="bad", **request_kw))
    assert info.value.code == code
    assert needle in info.value.details


@pytest.mark.slow
def test_client_sends_any_array_like_as_float32(server) -> None:
    x64 = images(3, side=8).astype(np.float64)
    with Client(server.target) as client:
        did = client.register_dataset(x64, [1, 2, 3])
        assert did == client.register_dataset(x64.astype(np.float32), np.array([1, 2, 3]))
        with pytest.raises(EdgescoreError) as info:
            client.register_dataset(x64[0], [])
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
