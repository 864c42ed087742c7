"""Human units in config: durations (``90s``, ``7d``) and sizes (``256MB``).

Plain numbers are seconds and bytes. Sizes use powers of 1024 for both ``MB`` and
``MiB`` because that is what people mean when they bound a cache.
"""

from __future__ import annotations

import re
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


def _split(value: str, what: str) -> tuple[float, str]:
    match = _NUMBER_UNIT.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a {what} (examples: {'90s, 5m, 7d' if what == 'duration' else '512KB, 256MB, 10GB'})")
    return float(match.group(1)), match.group(2).lower()


def parse_duration(value: object) -> float:
    """Seconds as a float from ``90``, ``"1.5s"``, ``"250ms"``, ``"7d"``; never negative."""
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a string like '90s'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        number, unit = _split(value, "duration")
        if unit == "":
            unit = "s"
        if unit not in _DURATION_UNITS:
            raise ValueError(f"unknown duration unit {unit!r} in {value!r}; use one of {', '.join(_DURATION_UNITS)}")
        seconds = number * _DURATION_UNITS[unit]
    else:
        raise ValueError(f"a duration must be a number or a string like '90s', got {type(value).__name__}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {value!r}")
    return seconds


def parse_size(value: object) -> int:
    """Bytes as an int from ``1048576``, ``"256MB"``, ``"1.5GiB"``; never negative."""
    if isinstance(value, bool):
        raise ValueError("a size must be a number of bytes or a string like '256MB'")
    if isinstance(value, (int, float)):
        size = float(value)
    elif isinstance(value, str):
        number, unit = _split(value, "size")
        if unit == "":
            unit = "b"
        if unit not in _SIZE_UNITS:
            raise ValueError(f"unknown size unit {unit!r} in {value!r}; use one of B, KB, MB, GB, TB (or KiB, MiB, ...)")
        size = number * _SIZE_UNITS[unit]
    else:
        raise ValueError(f"a size must be a number or a string like '256MB', got {type(value).__name__}")
    if size < 0:
        raise ValueError(f"a size cannot be negative, got {value!r}")
    return int(size)


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""A pydantic field type: seconds, accepting ``"90s"``-style strings."""

ByteSize = Annotated[int, BeforeValidator(parse_size)]
"""A pydantic field type: bytes, accepting ``"256MB"``-style strings."""
