"""Class count and input resolution of the CIFAR-style networks (nb201, nats_sss, nb101, fbnet)."""

from __future__ import annotations

from typing import Any

from edgescore.grammar.errors import SpecError

NUM_CLASSES_RANGE = (1, 100_000)
RESOLUTION_RANGE = (8, 1024)  # two stride-2 blocks need at least 2x2 left at the end


def _check_range(field: str, value: Any, default: int, bounds: tuple[int, int]) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(field, f"expected an integer, got {type(value).__name__}")
    if value == 0:
        return default
    low, high = bounds
    if not low <= value <= high:
        raise SpecError(field, f"{value} is outside {low}..{high} (0 means the default)")
    return value


def check_shape(num_classes: Any, input_resolution: Any, multiple: int = 1,
                resolution_range: tuple[int, int] = RESOLUTION_RANGE,
                default_classes: int = 10) -> tuple[int, int]:
    """Class count and input resolution of a CIFAR-style network (0: `default_classes`, CIFAR-10
    unless the space says otherwise, and 32), each a SpecError naming its field. `multiple`: the
    resolution must divide by it (networks with ResNet reduction blocks: each adds a pooled
    shortcut, rounded down, to a strided conv, rounded up; they only line up on even sizes, at
    both reductions: 4)."""
    classes = _check_range("arch.num_classes", num_classes, default_classes, NUM_CLASSES_RANGE)
    resolution = _check_range("arch.input_resolution", input_resolution, 32, resolution_range)
    if resolution % multiple:
        raise SpecError("arch.input_resolution",
                        f"must be a multiple of {multiple}, got {resolution}")
    return classes, resolution


def shape_fields(multiple: int = 1, resolution_range: tuple[int, int] = RESOLUTION_RANGE,
                 default_classes: int = 10) -> dict[str, str]:
    """ListSearchSpaces' description of what `check_shape` accepts, with the same arguments."""
    resolution = f"{resolution_range[0]}..{resolution_range[1]}"
    if multiple > 1:
        resolution += f", a multiple of {multiple}"
    return {"num_classes": f"{NUM_CLASSES_RANGE[0]}..{NUM_CLASSES_RANGE[1]}, "
                           f"0 = {default_classes}",
            "input_resolution": f"{resolution}, 0 = 32"}
