"""Human units in config: durations (``90s``, ``7d``) and sizes (``256MB``).

Plain numbers are seconds and bytes. Sizes use powers of 1024 for both ``MB`` and
``MiB`` because that is what people mean when they bound a cache.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import BeforeValidator

_DURATION_UNITS = {
    "ms": 0.001,
    "s": 1,
    "sec": 1,
    "m": 60,
    "min": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
}
_SIZE_UNITS = {
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tb": 1024**4,
    "tib": 1024**4,
}
_NUMBER_UNIT = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


@dataclass(frozen=True)
class _Quantity:
    what: str  # "duration", "size": how messages name it
    plain: str  # what a bare number counts
    like: str  # one example string
    examples: str
    units: dict[str, float]
    default_unit: str
    unit_names: str


_DURATION = _Quantity("duration", "seconds", "'90s'", "90s, 5m, 7d", _DURATION_UNITS, "s", ", ".join(_DURATION_UNITS))
_SIZE = _Quantity("size", "bytes", "'256MB'", "512KB, 256MB, 10GB", _SIZE_UNITS, "b",
                  "B, KB, MB, GB, TB (or KiB, MiB, ...)")


def _parse(value: object, kind: _Quantity) -> float:
    if isinstance(value, bool):
        raise ValueError(f"a {kind.what} must be a number of {kind.plain} or a string like {kind.like}")
    if isinstance(value, (int, float)):
        amount = float(value)
    elif isinstance(value, str):
        match = _NUMBER_UNIT.match(value)
        if not match:
            raise ValueError(f"{value!r} is not a {kind.what} (examples: {kind.examples})")
        unit = match.group(2).lower() or kind.default_unit
        if unit not in kind.units:
            raise ValueError(f"unknown {kind.what} unit {unit!r} in {value!r}; use one of {kind.unit_names}")
        amount = float(match.group(1)) * kind.units[unit]
    else:
        raise ValueError(f"a {kind.what} must be a number or a string like {kind.like}, got {type(value).__name__}")
    if amount < 0:
        raise ValueError(f"a {kind.what} cannot be negative, got {value!r}")
    return amount


def parse_duration(value: object) -> float:
    """Seconds as a float from ``90``, ``"1.5s"``, ``"250ms"``, ``"7d"``; never negative."""
    return _parse(value, _DURATION)


def parse_size(value: object) -> int:
    """Bytes as an int from ``1048576``, ``"256MB"``, ``"1.5GiB"``; never negative."""
    return int(_parse(value, _SIZE))


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A pydantic field type: seconds, accepting ``"90s"``-style strings."""

ByteSize = Annotated[int, BeforeValidator(parse_size)]
"""A pydantic field type: bytes, accepting ``"256MB"``-style strings."""
