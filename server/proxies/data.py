"""Calibration batches: seeded synthetic data, the bundled real CIFAR-10 sample, or a batch a
client registered (RegisterDataset, `datasets.py`).

Selection uses a private `torch.Generator` on the CPU, so a batch depends only on its seed (not on
the global RNG, nor on the device), and is then moved to the device by the caller.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from edgescore.server.errors import InvalidArgument
from edgescore.server.proxies import datasets

NPZ_NAME = "cifar10_train_sample1000.npz"
CIFAR10_SIZE = 1000  # images in the bundled sample
CIFAR10_CLASSES = 10
CIFAR10_RESOLUTION = 32

# Per-channel (mean, std) of CIFAR-10 in [0, 1], as each reference's loader normalises.
NORMALISATIONS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # SamsungLabs/zero-cost-nas foresight/dataset.py (get_cifar_dataloaders, 'cifar' branch).
    # Its std is the widespread per-pixel-averaged figure, not the dataset-wide std.
    "zero_cost_nas": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    # NB201 / xautodl get_datasets('cifar10'), which BayesWatch/nas-without-training uses for
    # NASWOT: mean [125.3, 123.0, 113.9]/255, std [63.0, 62.1, 66.7]/255.
    "nb201": (
        (125.3 / 255, 123.0 / 255, 113.9 / 255),
        (63.0 / 255, 62.1 / 255, 66.7 / 255),
    ),
}
DEFAULT_NORMALISATION = "zero_cost_nas"

STAND_IN_FLAG = "stand_in_data"
# A registered dataset without labels: labels were drawn at random (only label-using proxies care).
RANDOM_LABELS_FLAG = "random_labels"


@dataclass(frozen=True)
class CalibrationBatch:
    x: torch.Tensor  # float32 (N, C, H, W), on the CPU
    y: torch.Tensor  # int64 (N,), on the CPU
    flags: tuple[str, ...] = ()
    # Rows of the sample that were used (cifar10 and registered), for provenance and tests.
    indices: Optional[tuple[int, ...]] = field(default=None, repr=False)


@functools.lru_cache(maxsize=1)
def cifar10_sample() -> tuple[np.ndarray, np.ndarray]:
    """The bundled (x uint8 NHWC, y int64) arrays, read once per process."""
    ref = resources.files("edgescore.server.data").joinpath(NPZ_NAME)
    with ref.open("rb") as fh, np.load(fh) as npz:
        x, y = npz["x"], npz["y"]
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def max_batch_size(kind: str) -> Optional[int]:
    """The largest batch a data kind can supply without repeating images (None: unbounded)."""
    return CIFAR10_SIZE if kind == "cifar10" else None


def calibration_batch(kind: str, batch_size: int, seed: int, input_shape: tuple[int, int, int],
                      num_classes: int, normalisation: str = DEFAULT_NORMALISATION,
                      dataset_id: str = "") -> CalibrationBatch:
    """One batch of `batch_size` inputs of shape `input_shape` and labels in [0, num_classes)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    if kind == "synthetic":
        x = torch.randn((batch_size, *input_shape), generator=gen)
        y = torch.randint(0, num_classes, (batch_size,), generator=gen)
        return CalibrationBatch(x, y)
    if kind == "cifar10":
        return _cifar10_batch(gen, batch_size, input_shape, num_classes, normalisation)
    if kind == "registered":
        return _registered_batch(gen, dataset_id, batch_size, input_shape, num_classes)
    raise InvalidArgument("settings.data_kind", f"unknown data kind {kind!r}")


def _cifar10_batch(gen: torch.Generator, batch_size: int, input_shape: tuple[int, int, int],
                   num_classes: int, normalisation: str) -> CalibrationBatch:
    channels, height, width = input_shape
    if channels != 3:
        raise InvalidArgument("settings.data_kind",
                              f"cifar10 images have 3 channels, not {channels}")
    if not 1 <= batch_size <= CIFAR10_SIZE:
        raise InvalidArgument("settings.batch_size",
                              f"cifar10 supplies 1..{CIFAR10_SIZE} images, got {batch_size}")
    images, labels = cifar10_sample()
    idx = torch.randperm(CIFAR10_SIZE, generator=gen)[:batch_size]
    rows = idx.numpy()
    # uint8 HWC -> float NCHW in [0, 1], as torchvision's ToTensor does.
    x = torch.from_numpy(images[rows]).permute(0, 3, 1, 2).to(torch.float32).div_(255.0)
    flags: list[str] = []
    if (height, width) != (CIFAR10_RESOLUTION, CIFAR10_RESOLUTION):
        # Another dataset's resolution: the CIFAR-10 images stand in, resized.
        x = _resize(x, height, width)
        flags.append(STAND_IN_FLAG)
    mean, std = NORMALISATIONS[normalisation]
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    if num_classes == CIFAR10_CLASSES:
        y = torch.from_numpy(labels[rows].copy())
    else:
        # No real sample of that dataset: CIFAR-10 labels would not mean anything, so seeded random
        # labels in the right range, and the result says it ran on stand-in data.
        y = torch.randint(0, num_classes, (batch_size,), generator=gen)
        if STAND_IN_FLAG not in flags:
            flags.append(STAND_IN_FLAG)
    return CalibrationBatch(x.contiguous(), y, tuple(flags), tuple(int(i) for i in rows))


def _resize(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    # As a PIL/torchvision Resize would: bilinear, antialiased when shrinking.
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False,
                         antialias=True)


def _registered_batch(gen: torch.Generator, dataset_id: str, batch_size: int,
                      input_shape: tuple[int, int, int], num_classes: int) -> CalibrationBatch:
    """`batch_size` images drawn from a registered dataset by the seed, as for cifar10.

    The images arrive normalised, so no normalisation is applied; resizing after normalisation is
    the same as before it (both are per-channel affine maps and bilinear weights sum to one).
    """
    channels, height, width = input_shape
    entry = datasets.usable(dataset_id, batch_size, channels, num_classes)
    idx = torch.randperm(entry.size, generator=gen)[:batch_size]
    x = entry.x[idx]
    flags: list[str] = []
    if tuple(x.shape[2:]) != (height, width):
        # The uploaded images stand in for the network's resolution.
        x = _resize(x, height, width)
        flags.append(STAND_IN_FLAG)
    if entry.y is None:
        y = torch.randint(0, num_classes, (batch_size,), generator=gen)
        flags.append(RANDOM_LABELS_FLAG)
    else:
        y = entry.y[idx]
    return CalibrationBatch(x.contiguous(), y, tuple(flags), tuple(int(i) for i in idx))
