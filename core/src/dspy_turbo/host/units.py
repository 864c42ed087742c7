"""Human units in config: durations (``90s``, ``7d``) and sizes (``256MB``).

Plain numbers are seconds and bytes; a duration may have several parts, largest first
(``1h30m``, ``1d 12h``). Sizes use powers of 1024 for both ``MB`` and
``MiB`` because that is what people mean when they bound a cache.

Every value is finite and bounded by what the runtime can hold: a duration at most 100
years (a socket timeout, ``threading`` wait or Redis ``PX`` takes up to ~292 years), a size
at most 2**63 - 1 bytes (SQLite's and Redis's 64-bit integers). A TTL is more than 0.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import BeforeValidator, WithJsonSchema

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
# A compound duration: two or more number-and-unit parts (``1h30m``, ``1d 12h``)
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]+)")
_COMPOUND = re.compile(r"\s*(?:\d+(?:\.\d+)?\s*[a-zA-Z]+\s*){2,}")

MAX_DURATION = 100 * 365 * 86400.0
"""100 years, in seconds: below every runtime limit a duration reaches (``threading.TIMEOUT_MAX``,
socket timeouts and ``time_t`` deadlines, Redis ``PX`` in milliseconds)."""
MAX_SIZE = 2**63 - 1
"""Bytes: a signed 64-bit integer, what SQLite (the file tier) and Redis store sizes in."""


@dataclass(frozen=True)
class _Quantity:
    what: str  # "duration", "size": how messages name it
    plain: str  # what a bare number counts
    like: str  # one example string
    examples: str
    units: dict[str, float]
    default_unit: str
    unit_names: str
    maximum: float
    max_text: str


_DURATION = _Quantity("duration", "seconds", "'90s'", "90s, 5m, 1h30m, 7d", _DURATION_UNITS, "s", ", ".join(_DURATION_UNITS),
                      MAX_DURATION, f"100 years ({MAX_DURATION:.0f} seconds)")
_SIZE = _Quantity("size", "bytes", "'256MB'", "512KB, 256MB, 10GB", _SIZE_UNITS, "b",
                  "B, KB, MB, GB, TB (or KiB, MiB, ...)", MAX_SIZE, f"{MAX_SIZE} bytes (8 EiB)")


def _parse(value: object, kind: _Quantity) -> float | int:
    """The amount in seconds or bytes: an int when it is a whole number given as one (exact)."""
    if isinstance(value, bool):
        raise ValueError(f"a {kind.what} must be a number of {kind.plain} or a string like {kind.like}")
    amount: float | int
    if isinstance(value, (int, float)):
        amount = value
    elif isinstance(value, str):
        match = _NUMBER_UNIT.match(value) if len(value) <= 64 else None  # no 4300-digit int conversions
        if not match and kind is _DURATION and len(value) <= 64 and _COMPOUND.fullmatch(value):
            return _compound(value, kind)
        if not match:
            shown = repr(value) if len(value) <= 64 else "the value"
            raise ValueError(f"{shown} is not a {kind.what} (examples: {kind.examples})")
        amount = _amount(match.group(1), match.group(2), value, kind)
    else:
        raise ValueError(f"a {kind.what} must be a number or a string like {kind.like}, got {type(value).__name__}")
    if isinstance(amount, float) and math.isnan(amount):
        raise ValueError(f"a {kind.what} must be a number of {kind.plain}, not NaN")
    if amount < 0:
        raise ValueError(f"a {kind.what} cannot be negative, got {_shown(value)}")
    if amount > kind.maximum:
        unlimited = "; for no limit leave the setting out or use null where it allows that" if math.isinf(amount) else ""
        raise ValueError(f"a {kind.what} must be at most {kind.max_text}, got {_shown(value)}{unlimited}")
    return amount


def _amount(number: str, unit: str, value: str, kind: _Quantity) -> float | int:
    unit = unit.lower() or kind.default_unit
    if unit not in kind.units:
        raise ValueError(f"unknown {kind.what} unit {unit!r} in {value!r}; use one of {kind.unit_names}")
    factor = kind.units[unit]
    return int(number) * factor if "." not in number and isinstance(factor, int) else float(number) * factor


def _compound(value: str, kind: _Quantity) -> float:
    """``1h30m``, ``1d 12h``, ``2m30s``: the sum of its parts, each with its unit, largest first."""
    parts = _PART.findall(value)
    amounts = [_amount(number, unit, value, kind) for number, unit in parts]
    factors = [kind.units[unit.lower()] for _, unit in parts]
    if any(later >= earlier for earlier, later in itertools.pairwise(factors)):
        raise ValueError(f"{value!r}: write the parts of a duration largest first, each unit once (e.g. 1h30m)")
    total = float(sum(amounts))
    if total > kind.maximum:
        raise ValueError(f"a {kind.what} must be at most {kind.max_text}, got {_shown(value)}")
    return total


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def parse_duration(value: object) -> float:
    """Seconds as a float from ``90``, ``"1.5s"``, ``"250ms"``, ``"7d"``; finite, never negative,
    at most ``MAX_DURATION``."""
    return float(_parse(value, _DURATION))


def format_duration(seconds: float) -> str:
    """Seconds as people write them: ``1h``, ``1d``, ``1h30m``, ``90ms``; the inverse of ``parse_duration``."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    parts, rest = [], seconds
    for unit, size in (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if rest >= size:
            count = int(rest // size)
            parts.append(f"{count}{unit}")
            rest -= count * size
    if rest or not parts:
        parts.append(f"{rest:g}s")
    return "".join(parts)


def parse_size(value: object) -> int:
    """Bytes as an int from ``1048576``, ``"256MB"``, ``"1.5GiB"``; never negative, at most ``MAX_SIZE``."""
    return int(_parse(value, _SIZE))


def parse_ttl(value: object) -> float:
    """A lifetime in seconds, as ``parse_duration``, and more than 0.

    0 is refused rather than given a meaning: it read as "never expires" in one place and
    "never store" in another. No expiry is ``null`` (or leaving the setting out); storing
    nothing in a tier is removing the tier.
    """
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("a ttl must be more than 0; for entries that never expire leave ttl out or set it to null, "
                         "and to store nothing in a tier remove the tier")
    return seconds


def _any_case(unit: str) -> str:
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in unit)


def _json_schema(kind: _Quantity, minimum_exclusive: bool = False) -> dict:
    """What an editor checks a value against (JSON Schema has no case-insensitive flag: the
    units are spelled as character classes, longest first so ``ms`` is not read as ``m``)."""
    units = "|".join(_any_case(u) for u in sorted(kind.units, key=len, reverse=True))
    number = {"type": "number", "maximum": kind.maximum, **({"exclusiveMinimum": 0} if minimum_exclusive else {"minimum": 0})}
    text = {"type": "string", "pattern": rf"^\s*\d+(\.\d+)?\s*({units})?\s*$"}
    return {"anyOf": [number, text], "description": f"a {kind.what}: a number of {kind.plain} or a string like "
                                                      f"{kind.examples}", "examples": [kind.like.strip("'")]}


Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema(_json_schema(_DURATION))]
"""A pydantic field type: seconds, accepting ``"90s"``-style strings; at most 100 years."""

TTL = Annotated[float, BeforeValidator(parse_ttl), WithJsonSchema(_json_schema(_DURATION, minimum_exclusive=True))]
"""A pydantic field type: a lifetime in seconds (``"7d"``), more than 0; type it ``TTL | None`` for "no expiry"."""

ByteSize = Annotated[int, BeforeValidator(parse_size), WithJsonSchema(_json_schema(_SIZE))]
"""A pydantic field type: bytes, accepting ``"256MB"``-style strings; at most 2**63 - 1."""
