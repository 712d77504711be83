"""Checks shared by the dict-spec spaces (macro, vit): every bad value becomes a SpecError naming
its field, with a short description of the value (never a huge repr)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from edgescore.grammar.errors import SpecError

FLOAT_DIGITS = 4  # floats are rounded to this many decimals so that float32 noise hashes alike
NUM_CLASSES_RANGE = (1, 100_000)


def show(value: Any, limit: int = 60) -> str:
    """A short, safe description of a bad value for an error message (never a huge repr)."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        return repr(value) if abs(value) < 10**15 else "a very large integer"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return repr(value[:limit]) + ("..." if len(value) > limit else "")
    return f"a value of type {type(value).__name__}"


def _type_error(field: str, expected: str, value: Any) -> SpecError:
    return SpecError(field, f"expected {expected}, got {show(value)}")


def check_int(field: str, value: Any, default: Optional[int], bounds: tuple[int, int]) -> int:
    """An integer within `bounds`; 0 means `default` (None: the field is required)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(field, "an integer", value)
    if value == 0 and default is not None:
        return default
    low, high = bounds
    if not low <= value <= high:
        zero = " (0 means the default)" if default is not None else ""
        raise SpecError(field, f"{show(value)} is outside {low}..{high}{zero}")
    return value


def check_float(field: str, value: Any, default: Optional[float], bounds: tuple[float, float],
                low_open: bool = False) -> float:
    """A finite number within `bounds`, rounded to FLOAT_DIGITS; 0 means `default` if given."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _type_error(field, "a number", value)
    if isinstance(value, float) and not math.isfinite(value):
        raise SpecError(field, f"{show(value)} is not a finite number")
    if value == 0 and default is not None:
        return default
    low, high = bounds
    # Integers are compared before float(): float() of a huge int overflows.
    number = round(float(value), FLOAT_DIGITS) if abs(value) <= high else math.inf
    if not (low < number if low_open else low <= number) or number > high:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise SpecError(field, f"{show(value)} is outside {interval}")
    return number


def check_choice(field: str, value: Any, default: int, choices: Sequence[int]) -> int:
    """An integer from `choices`; 0 means `default`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(field, "an integer", value)
    if value == 0:
        return default
    if value not in choices:
        listed = ", ".join(map(str, choices))
        raise SpecError(field, f"{show(value)} is not one of {listed} (0 means {default})")
    return value


def check_bool(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _type_error(field, "true or false", value)
    return value


def check_list(field: str, value: Any, max_len: int) -> Sequence[Any]:
    """A list or tuple of at most `max_len` items (its length checked before anything is read)."""
    if not isinstance(value, (list, tuple)):
        raise _type_error(field, "a list", value)
    if len(value) > max_len:
        raise SpecError(field, f"{len(value)} entries, at most {max_len}")
    return value


def check_keys(field: str, value: Any, known: Sequence[str]) -> Mapping[str, Any]:
    """A mapping whose keys are all in `known` (catches typos and camelCase names early)."""
    if not isinstance(value, Mapping):
        raise _type_error(field, "an object with fields " + ", ".join(known), value)
    unknown = [key for key in value if key not in known]
    if unknown:
        raise SpecError(
            field, f"unknown field {show(unknown[0])}; known fields: {', '.join(known)}"
        )
    return value


def canonical_json(value: Any) -> str:
    """Compact, sorted-key JSON: equal normalised specs give equal strings (and hashes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def check_classes(num_classes: Any, default: int) -> int:
    return check_int("arch.num_classes", num_classes, default, NUM_CLASSES_RANGE)
