"""Images for int8 calibration and for the parity check of every artifact.

Both come from the bundled CIFAR-10 sample (real images: int8 ranges calibrated on noise would not
match deployment), drawn once with a fixed seed, in batches of the artifact's static batch size.
The parity images are the ones after the calibration images, so an int8 artifact is judged on
images its ranges were not fitted to (unless the batch is so large that the 1,000 images repeat).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from edgescore.server.errors import ServerError

CALIBRATION_IMAGES = 32  # enough for stable min/max ranges; ORT calibration costs ~50 ms an image
PARITY_IMAGES = 64       # enough for a top-1 agreement figure with 1/64 resolution
SEED = 0


@functools.lru_cache(maxsize=8)
def _pool(image_shape: tuple[int, ...], count: int) -> np.ndarray:
    from edgescore.server.proxies.data import CIFAR10_SIZE, calibration_batch

    try:
        batch = calibration_batch("cifar10", min(count, CIFAR10_SIZE), SEED, image_shape, 10)
        images = batch.x.numpy()
    except ServerError:
        # Not a 3-channel image input: seeded N(0, 1) stands in (ranges are then only indicative).
        images = np.random.default_rng(SEED).standard_normal((count, *image_shape))
    images = images.astype(np.float32)
    images.setflags(write=False)
    return images


def batches(input_shape: tuple[int, ...]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(calibration batches, parity batches), each batch of shape `input_shape` (batch first)."""
    batch, image_shape = input_shape[0], tuple(input_shape[1:])
    n_cal = math.ceil(CALIBRATION_IMAGES / batch)
    n_par = math.ceil(PARITY_IMAGES / batch)
    pool = _pool(image_shape, (n_cal + n_par) * batch)
    # A batch larger than the sample repeats images (np.resize tiles); ranges stay representative.
    rows = np.resize(np.arange(len(pool)), (n_cal + n_par) * batch).reshape(-1, batch)
    out = [pool[r] for r in rows]
    return out[:n_cal], out[n_cal:]
