"""Registered calibration datasets: a batch uploaded once (RegisterDataset), then used by id.

The store lives in the server process's memory only (a restart forgets every dataset: clients
register again, and get the same id back because the id is a hash of the content). Two caps keep
it bounded: one upload may not exceed `max_dataset_bytes` (RESOURCE_EXHAUSTED), and when the
datasets together would exceed `max_store_bytes` the least recently used ones are dropped, so a
long-running server never refuses uploads for good; a dropped id answers NOT_FOUND.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from edgescore.server.errors import InvalidArgument, NotFound, ResourceExhausted, shown

DEFAULT_MAX_DATASET_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_STORE_BYTES = 512 * 1024 * 1024
MAX_NAME_CHARS = 256
CHANNELS_RANGE = (1, 64)
SIDE_RANGE = (1, 4096)
_ID_DOMAIN = b"edgescore.dataset.v1\0"  # so a dataset id can never equal another kind of hash


@dataclass(frozen=True)
class RegisteredDataset:
    dataset_id: str
    name: str
    x: torch.Tensor  # float32 (N, C, H, W) on the CPU, read as uploaded (already normalised)
    y: torch.Tensor | None  # int64 (N,), or None when uploaded without labels
    nbytes: int
    max_label: int = -1  # -1 without labels

    @property
    def size(self) -> int:
        return int(self.x.shape[0])

    @property
    def channels(self) -> int:
        return int(self.x.shape[1])


def _field_int(value: int, field: str, bounds: tuple[int, int], what: str) -> int:
    if not bounds[0] <= value <= bounds[1]:
        raise InvalidArgument(field, f"{what} {value} is outside {bounds[0]}..{bounds[1]}")
    return value


def _check_shape(shape: Sequence[int]) -> tuple[int, int, int, int]:
    if len(shape) != 4:
        raise InvalidArgument("shape", f"expected 4 dimensions (N, C, H, W), got {len(shape)}: "
                                       f"{list(shape)[:8]}")
    n, c, h, w = (int(v) for v in shape)
    if n < 1:
        raise InvalidArgument("shape", f"N (images) must be at least 1, got {n}")
    _field_int(c, "shape", CHANNELS_RANGE, "C (channels)")
    _field_int(h, "shape", SIDE_RANGE, "H (height)")
    _field_int(w, "shape", SIDE_RANGE, "W (width)")
    return n, c, h, w


def dataset_id_of(images: bytes, shape: Sequence[int], labels: Sequence[int]) -> str:
    """sha256 of the content (shape, image bytes, labels); the name is not part of it."""
    h = hashlib.sha256(_ID_DOMAIN)
    h.update(np.asarray(shape, dtype="<u8").tobytes())
    h.update(images)
    h.update(np.asarray(labels, dtype="<i8").tobytes())
    return h.hexdigest()


class DatasetStore:
    """Thread-safe in-memory datasets keyed by id, least recently used dropped past the cap."""

    def __init__(self, max_dataset_bytes: int = DEFAULT_MAX_DATASET_BYTES,
                 max_store_bytes: int = DEFAULT_MAX_STORE_BYTES) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[str, RegisteredDataset] = OrderedDict()
        self.configure(max_dataset_bytes, max_store_bytes)

    def configure(self, max_dataset_bytes: int, max_store_bytes: int) -> None:
        if max_dataset_bytes < 1 or max_store_bytes < max_dataset_bytes:
            raise ValueError("need 1 <= max_dataset_bytes <= max_store_bytes, got "
                             f"{max_dataset_bytes} and {max_store_bytes}")
        with self._lock:
            self.max_dataset_bytes = max_dataset_bytes
            self.max_store_bytes = max_store_bytes
            self._evict(0)

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return sum(d.nbytes for d in self._items.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def register(self, name: str, images: bytes, shape: Sequence[int],
                 labels: Sequence[int] = ()) -> str:
        """Validate an upload and keep it; returns its id. Same content, same id (idempotent)."""
        if len(name) > MAX_NAME_CHARS:
            raise InvalidArgument("name", f"{len(name)} characters; at most {MAX_NAME_CHARS}")
        n, c, h, w = _check_shape(shape)
        # The cap is checked on the bytes that arrived, before anything is decoded or copied.
        nbytes = len(images) + 8 * len(labels)
        if nbytes > self.max_dataset_bytes:
            raise ResourceExhausted(
                f"images: the dataset is {nbytes:,} bytes, over the cap of "
                f"{self.max_dataset_bytes:,} bytes per dataset")
        expected = math.prod((n, c, h, w)) * 4
        if len(images) != expected:
            raise InvalidArgument("images", f"{len(images):,} bytes, but shape {[n, c, h, w]} "
                                            f"needs {expected:,} (float32, 4 bytes each)")
        if labels and len(labels) != n:
            raise InvalidArgument("labels", f"{len(labels)} labels for {n} images; give one per "
                                            "image, or none")
        array = np.frombuffer(images, dtype="<f4").reshape(n, c, h, w)
        finite = np.isfinite(array)
        if not finite.all():
            first = int(np.flatnonzero(~finite.reshape(-1))[0])
            raise InvalidArgument("images", f"value {array.reshape(-1)[first]!r} at flat position "
                                            f"{first} is not finite")
        y, max_label = None, -1
        if labels:
            y_np = np.asarray(labels, dtype=np.int64)
            if (y_np < 0).any():
                first = int(np.flatnonzero(y_np < 0)[0])
                raise InvalidArgument("labels", f"label {int(y_np[first])} at position {first} "
                                                "is negative")
            y, max_label = torch.from_numpy(y_np.copy()), int(y_np.max())
        dataset_id = dataset_id_of(images, (n, c, h, w), labels)
        with self._lock:
            if dataset_id in self._items:
                self._items.move_to_end(dataset_id)
                return dataset_id
        # Copy outside the lock: frombuffer views the request's immutable bytes, and torch wants a
        # writable array it owns (the copy also lets the request message be freed).
        x = torch.from_numpy(array.astype(np.float32, copy=True))
        entry = RegisteredDataset(dataset_id, name, x, y, nbytes, max_label)
        with self._lock:
            self._evict(nbytes)
            self._items[dataset_id] = entry
        return dataset_id

    def put(self, entry: RegisteredDataset) -> None:
        """Keep an already validated dataset (a compute worker receiving the server's copy)."""
        with self._lock:
            if entry.dataset_id in self._items:
                self._items.move_to_end(entry.dataset_id)
                return
            self._evict(entry.nbytes)
            self._items[entry.dataset_id] = entry

    def _evict(self, incoming: int) -> None:
        # Caller holds the lock.
        total = sum(d.nbytes for d in self._items.values())
        while self._items and total + incoming > self.max_store_bytes:
            _, dropped = self._items.popitem(last=False)
            total -= dropped.nbytes

    def get(self, dataset_id: str, field: str = "settings.data.dataset_id") -> RegisteredDataset:
        with self._lock:
            entry = self._items.get(dataset_id)
            if entry is not None:
                self._items.move_to_end(dataset_id)
                return entry
        raise NotFound(f"{field}: unknown dataset id {shown(dataset_id)} (never registered, or "
                       "dropped from the server's memory since: register it again)")

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


# The server's one store: RegisterDataset writes it, calibration batches read it.
STORE = DatasetStore()


def usable(dataset_id: str, batch_size: int, channels: int, num_classes: int,
           field: str = "settings") -> RegisteredDataset:
    """The dataset, if a batch of `batch_size` images with `channels` channels and labels below
    `num_classes` can be drawn from it; else NOT_FOUND / INVALID_ARGUMENT naming the field."""
    entry = STORE.get(dataset_id, f"{field}.data.dataset_id")
    if not 1 <= batch_size <= entry.size:
        raise InvalidArgument(f"{field}.batch_size", f"batch of {batch_size} requested, but "
                                                     f"dataset {dataset_id[:12]} holds "
                                                     f"{entry.size} images")
    if entry.channels != channels:
        raise InvalidArgument(f"{field}.data.dataset_id",
                              f"dataset {dataset_id[:12]} has {entry.channels} channels; "
                              f"the network takes {channels}")
    if entry.max_label >= num_classes:
        raise InvalidArgument(f"{field}.data.dataset_id",
                              f"dataset {dataset_id[:12]} has label {entry.max_label}, but the "
                              f"network has {num_classes} classes (labels 0..{num_classes - 1})")
    return entry
