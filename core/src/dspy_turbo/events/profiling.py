"""Profiling and timing of user code: ``turbo.profile()`` and ``turbo.timed(name)``.

``turbo.timed("retrieve")`` times a block or every call of a function (sync or async);
``with turbo.profile() as prof:`` runs cProfile over a block and ``prof.table()`` shows the
hot spots. Both emit ``timed`` events (``reason`` is the name, ``latency`` the seconds),
so every sink sees them (the Prometheus sink as ``dspy_turbo_timed_duration_seconds``),
and ``turbo.stats()["timed"]`` has their counts and percentiles.
"""

from __future__ import annotations

import cProfile
import functools
import inspect
import os
import pstats
import re
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .bus import Event, describe_error
from .stats import _percentiles

if TYPE_CHECKING:
    from ..host.turbo import Turbo

TIMED = "timed"
_NAME = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")  # a label value: short, bounded, never request text
_SAMPLES = 5_000


class Timings:
    """Counts and latency percentiles per timed name, for ``turbo.stats()["timed"]``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_name: dict[str, tuple[list[int], deque[float]]] = {}

    def record(self, name: str, seconds: float, failed: bool) -> None:
        with self._lock:
            counts, samples = self._by_name.setdefault(name, ([0, 0], deque(maxlen=_SAMPLES)))
            counts[0] += 1
            counts[1] += failed
            samples.append(seconds)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {name: {**_percentiles(samples), "count": counts[0], "errors": counts[1]}
                    for name, (counts, samples) in self._by_name.items()}

    def __bool__(self) -> bool:
        return bool(self._by_name)


def _report(turbo: Turbo, name: str, seconds: float, exc: BaseException | None, extra: dict | None = None) -> None:
    turbo.timings.record(name, seconds, exc is not None)
    turbo.bus.emit(Event(TIMED, reason=name, latency=seconds, error=describe_error(exc) if exc else None,
                         namespace=turbo.namespace, extra=extra))


class Timed:
    """A context manager and a decorator; one instance may be used from many threads at once."""

    def __init__(self, turbo: Turbo, name: str):
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"timed name {name!r} must be 1-64 characters of letters, digits, '_', '.', ':' or '-' "
                             "(it becomes a metric label, so it must be a fixed name, not data)")
        self.turbo = turbo
        self.name = name
        self._local = threading.local()

    def __enter__(self) -> Timed:
        stack = self._local.__dict__.setdefault("starts", [])
        stack.append(time.perf_counter())
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        started = self._local.starts.pop()
        _report(self.turbo, self.name, time.perf_counter() - started, exc)

    def __call__(self, fn):
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args, **kwargs):
                started = time.perf_counter()
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    _report(self.turbo, self.name, time.perf_counter() - started, exc)
                    raise
                _report(self.turbo, self.name, time.perf_counter() - started, None)
                return result
            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                _report(self.turbo, self.name, time.perf_counter() - started, exc)
                raise
            _report(self.turbo, self.name, time.perf_counter() - started, None)
            return result
        return wrapper


@dataclass(frozen=True)
class HotSpot:
    function: str
    """``path:line(name)``, the path shortened to the package."""
    calls: int
    own_s: float
    """Time in the function itself."""
    total_s: float
    """Time in the function and everything it called."""


def _short(filename: str) -> str:
    for marker in ("site-packages" + os.sep, "src" + os.sep, "lib" + os.sep):
        if marker in filename:
            return filename.rsplit(marker, 1)[1]
    return os.path.basename(filename) if os.sep in filename else filename


class Profile:
    """cProfile over a ``with`` block (the calling thread only), hot spots as rows and a table."""

    def __init__(self, turbo: Turbo, top: int = 15, sort: str = "cumulative", name: str = "profile"):
        if sort not in ("cumulative", "tottime"):
            raise ValueError(f"sort must be 'cumulative' or 'tottime', got {sort!r}")
        self.turbo = turbo
        self.top = top
        self.sort = sort
        self.name = name
        self.rows: list[HotSpot] = []
        self.seconds = 0.0
        self._profiler = cProfile.Profile()

    def __enter__(self) -> Profile:
        self._started = time.perf_counter()
        self._profiler.enable()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._profiler.disable()
        self.seconds = time.perf_counter() - self._started
        self.rows = self._hot_spots()
        top = [{"function": r.function, "total_s": round(r.total_s, 6)} for r in self.rows[:5]]
        _report(self.turbo, self.name, self.seconds, exc, extra={"top": top})

    def _hot_spots(self) -> list[HotSpot]:
        stats = pstats.Stats(self._profiler)
        rows = []
        for (filename, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
            if filename == __file__ or "_lsprof" in func:
                continue  # the profiler itself
            where = f"{_short(filename)}:{line}({func})" if line else func
            rows.append((nc, tt, ct, where))
        rows.sort(key=lambda r: r[2] if self.sort == "cumulative" else r[1], reverse=True)
        return [HotSpot(where, nc, tt, ct) for nc, tt, ct, where in rows[: self.top]]

    def table(self, width: int = 100) -> str:
        """The hot spots as a plain-text table (calls, own time, total time, function)."""
        head = f"{'calls':>9}  {'own s':>9}  {'total s':>9}  function"
        lines = [f"profile: {self.seconds:.3f} s, top {len(self.rows)} by {self.sort} time", head, "-" * min(width, 80)]
        room = max(20, width - 35)
        for r in self.rows:
            fn = r.function if len(r.function) <= room else "..." + r.function[-(room - 3):]
            lines.append(f"{r.calls:>9}  {r.own_s:>9.4f}  {r.total_s:>9.4f}  {fn}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()
