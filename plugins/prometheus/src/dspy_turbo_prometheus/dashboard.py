"""``dspy-turbo top``: a live terminal view of a running dspy-turbo.

Two sources, one view:

* ``dspy-turbo top --url http://host:9464/metrics`` scrapes the Prometheus endpoint of
  a process running the ``prometheus`` sink (any process, any host);
* ``dspy_turbo_prometheus.dashboard.run(turbo)`` attaches to a Turbo in this process (from a
  notebook or a debugging session: run the program in a thread, the view in front).

Every ``interval`` seconds (1 by default) it samples the cumulative counters and shows
rates over the last few seconds: requests/s, hit rate per tier, error rate, LM calls/s
and their p50/p95 latency, dollars spent and saved, memory, firing alerts, dropped
events, with sparklines of the last three minutes. It fits a plain 80x24 terminal and
leaves it clean on Ctrl-C.
"""

from __future__ import annotations

import math
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from . import metrics

SPARKS = "▁▂▃▄▅▆▇█"
RATE_WINDOW = 5.0  # seconds the rates are computed over: steady numbers at a 1 s refresh
HISTORY = 180.0  # seconds of sparkline


@dataclass
class Snapshot:
    """Cumulative counters at one moment, whatever the source."""

    time: float
    hits: dict[str, float] = field(default_factory=dict)
    misses: float = 0.0
    errors: float = 0.0
    lm_calls: float = 0.0
    lm_errors: float = 0.0
    dollars_spent: float = 0.0
    dollars_saved: float = 0.0
    tokens_saved: float = 0.0
    memory_bytes: float | None = None
    dropped: float = 0.0
    alerts: list[str] = field(default_factory=list)
    lm_buckets: dict[float, float] = field(default_factory=dict)
    """Cumulative histogram buckets (upper bound -> count) of LM call latency, when known."""
    lookup_buckets: dict[float, float] = field(default_factory=dict)
    lm_latency: tuple[float | None, float | None] = (None, None)
    """p50/p95 seconds when the source gives them directly (in process)."""
    lookup_latency: tuple[float | None, float | None] = (None, None)

    @property
    def requests(self) -> float:
        return sum(self.hits.values()) + self.misses


class SourceError(RuntimeError):
    pass


# -- sources -------------------------------------------------------------------------------


class MetricsURL:
    """Scrapes a Prometheus endpoint served by the ``prometheus`` sink."""

    def __init__(self, url: str, timeout: float = 2.0):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"--url must be an http(s) URL of a /metrics endpoint, got {url!r}")
        self.url = url
        self.timeout = timeout
        self.label = url

    def sample(self) -> Snapshot:
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout) as response:
                text = response.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError) as exc:
            raise SourceError(f"cannot reach {self.url}: {getattr(exc, 'reason', exc)}") from None
        snap = Snapshot(time.monotonic())
        try:
            families = list(text_string_to_metric_families(text))
        except Exception as exc:
            raise SourceError(f"{self.url} did not answer in the Prometheus format: {exc}") from None
        for family in families:
            for s in family.samples:
                _add_sample(snap, s.name, s.labels, s.value)
        return snap


# The samples a frame reads, by their names in the exposition (metrics.py names the families).
_LOOKUPS, _ERRORS, _LM_CALLS = f"{metrics.LOOKUPS}_total", f"{metrics.ERRORS}_total", f"{metrics.LM_CALLS}_total"
_DOLLARS, _TOKENS, _DROPPED = f"{metrics.DOLLARS}_total", f"{metrics.TOKENS}_total", f"{metrics.DROPPED}_total"
_LM_BUCKETS, _LOOKUP_BUCKETS = f"{metrics.OPERATION_DURATION}_bucket", f"{metrics.LOOKUP_DURATION}_bucket"


def _add_sample(snap: Snapshot, name: str, labels: dict[str, str], value: float) -> None:
    if name == _LOOKUPS:
        if labels.get("result") == "hit":
            tier = labels.get("tier", "?")
            snap.hits[tier] = snap.hits.get(tier, 0.0) + value
        else:
            snap.misses += value
    elif name == _ERRORS:
        snap.errors += value
    elif name == _LM_CALLS:
        if labels.get("result") == "error":
            snap.lm_errors += value
        else:
            snap.lm_calls += value
    elif name == _DOLLARS:
        if labels.get("kind") == "spent":
            snap.dollars_spent += value
        elif labels.get("kind") == "saved":  # by the cache, as turbo.stats()["dollars"]["saved"]
            snap.dollars_saved += value
    elif name == _TOKENS and labels.get("kind") == "saved":
        snap.tokens_saved += value
    elif name == metrics.MEMORY:
        snap.memory_bytes = value
    elif name == _DROPPED:
        snap.dropped += value
    elif name == metrics.ALERT_ACTIVE and value >= 1:
        snap.alerts.append(labels.get("alert", "?"))
    elif name == _LM_BUCKETS:
        le = float(labels["le"])
        snap.lm_buckets[le] = snap.lm_buckets.get(le, 0.0) + value
    elif name == _LOOKUP_BUCKETS:
        le = float(labels["le"])
        snap.lookup_buckets[le] = snap.lookup_buckets.get(le, 0.0) + value


class InProcess:
    """Reads ``turbo.stats()`` of a Turbo in this process."""

    def __init__(self, turbo: Any):
        self.turbo = turbo
        self.label = f"in process: {turbo.namespace}"

    def sample(self) -> Snapshot:
        s = self.turbo.stats()
        snap = Snapshot(time.monotonic(), hits={k: float(v) for k, v in s["hits"].items()}, misses=s["misses"],
                        errors=sum(s["errors"].values()) + s["lm_errors"], lm_calls=s["lm_calls"], lm_errors=s["lm_errors"],
                        dollars_spent=s["dollars"]["spent"], dollars_saved=s["dollars"]["saved"],
                        tokens_saved=s["tokens"]["saved"], dropped=s.get("dropped_events", 0),
                        alerts=list(s.get("alerts_firing", [])))
        snap.memory_bytes = _resident_bytes()
        for attr, kind in (("lm_latency", "miss"), ("lookup_latency", "hit")):
            lat = s["latency"][kind]
            if lat["count"]:
                setattr(snap, attr, (lat["p50_ms"] / 1000, lat["p95_ms"] / 1000))
        return snap


def _resident_bytes() -> float | None:
    try:
        import os

        with open("/proc/self/statm", "rb") as f:
            return float(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, IndexError):
        return None


# -- numbers -------------------------------------------------------------------------------


def quantile(q: float, now: dict[float, float], before: dict[float, float]) -> float | None:
    """Prometheus' ``histogram_quantile`` over the increase of cumulative buckets."""
    bounds = sorted(now)
    counts = [now[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    rank = q * counts[-1]
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return prev_bound
            if count == prev_count:
                return bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / (count - prev_count)
        prev_bound, prev_count = bound, count
    return prev_bound


@dataclass
class Rates:
    """What one frame shows: rates over the last ``RATE_WINDOW`` seconds, plus totals."""

    requests_per_s: float | None = None
    hit_rate: float | None = None
    tier_rates: dict[str, float] = field(default_factory=dict)
    error_rate: float | None = None
    lm_per_s: float | None = None
    lm_p50: float | None = None
    lm_p95: float | None = None
    lookup_p50: float | None = None
    lookup_p95: float | None = None


def rates(now: Snapshot, before: Snapshot | None) -> Rates:
    r = Rates()
    if before is None or now.time <= before.time:
        return r
    dt = now.time - before.time
    lookups = now.requests - before.requests
    r.requests_per_s = lookups / dt
    r.lm_per_s = (now.lm_calls + now.lm_errors - before.lm_calls - before.lm_errors) / dt
    if lookups > 0:
        hits = {t: v - before.hits.get(t, 0.0) for t, v in now.hits.items()}
        r.hit_rate = sum(hits.values()) / lookups
        r.tier_rates = {t: h / lookups for t, h in sorted(hits.items())}
        r.error_rate = min(1.0, (now.errors - before.errors) / lookups)
    if now.lm_buckets:
        r.lm_p50 = quantile(0.5, now.lm_buckets, before.lm_buckets)
        r.lm_p95 = quantile(0.95, now.lm_buckets, before.lm_buckets)
    else:
        r.lm_p50, r.lm_p95 = now.lm_latency
    if now.lookup_buckets:
        r.lookup_p50 = quantile(0.5, now.lookup_buckets, before.lookup_buckets)
        r.lookup_p95 = quantile(0.95, now.lookup_buckets, before.lookup_buckets)
    else:
        r.lookup_p50, r.lookup_p95 = now.lookup_latency
    return r


def sparkline(values: list[float | None], width: int, top: float | None = None) -> str:
    """The last values as block characters, binned to ``width`` (a gap is a space).

    ``top`` is the value of a full block (1.0 for a rate); by default the largest value.
    """
    if not values:
        return ""
    per = max(1, math.ceil(len(values) / width))
    bins = []
    for i in range(0, len(values), per):
        chunk = [v for v in values[i:i + per] if v is not None]
        bins.append(sum(chunk) / len(chunk) if chunk else None)
    bins = bins[-width:]
    if top is None:
        top = max((v for v in bins if v is not None), default=0.0)
    if top <= 0:
        return "".join(" " if v is None else SPARKS[0] for v in bins)
    return "".join(" " if v is None else SPARKS[min(len(SPARKS) - 1, int(v / top * (len(SPARKS) - 1) + 0.5))] for v in bins)


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 0.001:
        return f"{seconds * 1000:.0f} ms" if seconds >= 0.1 else f"{seconds * 1000:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:5.1f} %"


def _num(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:,.1f}{unit}"


def _bytes(value: float | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:,.1f} {unit}" if unit != "B" else f"{value:.0f} B"
        value /= 1024
    return "-"


# -- the view ------------------------------------------------------------------------------


class Dashboard:
    """Samples a source and renders frames; ``run()`` drives it in the terminal."""

    def __init__(self, source: MetricsURL | InProcess, interval: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.source = source
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self.snapshots: deque[Snapshot] = deque()
        self.history: deque[tuple[float | None, float | None]] = deque(maxlen=int(HISTORY / max(interval, 0.1)) + 1)
        self.error: str | None = None

    def step(self) -> Rates:
        """Take one sample; returns the rates for the frame (never raises for a down source)."""
        try:
            snap = self.source.sample()
            self.error = None
        except SourceError as exc:
            self.error = str(exc)
            self.history.append((None, None))
            return Rates()
        self.snapshots.append(snap)
        while len(self.snapshots) > 2 and snap.time - self.snapshots[1].time >= RATE_WINDOW:
            self.snapshots.popleft()
        before = self.snapshots[0] if len(self.snapshots) > 1 else None
        if before is not None and snap.requests < before.requests:  # the process restarted: start over
            self.snapshots.clear()
            self.snapshots.append(snap)
            before = None
        r = rates(snap, before)
        self.history.append((r.requests_per_s, r.hit_rate))
        return r

    def render(self, r: Rates):
        from rich.console import Group
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        snap = self.snapshots[-1] if self.snapshots else None
        uptime = int(self.clock() - self.started)
        title = f"dspy-turbo top  {self.source.label}"
        if len(title) > 60:
            title = title[:57] + "..."
        table = Table.grid(padding=(0, 1))
        table.add_column(style="bold", width=16, no_wrap=True)
        table.add_column(width=14, no_wrap=True, justify="right")
        table.add_column(no_wrap=True)
        spark_width = 40
        req_hist = [h[0] for h in self.history]
        hit_hist = [h[1] for h in self.history]
        table.add_row("requests/s", _num(r.requests_per_s), Text(sparkline(req_hist, spark_width), style="cyan"))
        table.add_row("hit rate", _pct(r.hit_rate), Text(sparkline(hit_hist, spark_width, top=1.0), style="green"))
        for tier, rate in list(r.tier_rates.items())[:4]:
            table.add_row(f"  {tier}", _pct(rate), "")
        table.add_row("error rate", _pct(r.error_rate), "")
        table.add_row("LM calls/s", _num(r.lm_per_s),
                      f"total {snap.lm_calls:,.0f}  errors {snap.lm_errors:,.0f}" if snap else "")
        table.add_row("LM latency", f"p50 {_ms(r.lm_p50)}", f"p95 {_ms(r.lm_p95)}")
        table.add_row("lookup latency", f"p50 {_ms(r.lookup_p50)}", f"p95 {_ms(r.lookup_p95)}")
        if snap:
            table.add_row("requests", f"{snap.requests:,.0f}", f"hits {sum(snap.hits.values()):,.0f}  misses {snap.misses:,.0f}")
            table.add_row("$ saved", f"${snap.dollars_saved:,.4f}",
                          f"spent ${snap.dollars_spent:,.4f}  tokens saved {snap.tokens_saved:,.0f}")
            table.add_row("memory", _bytes(snap.memory_bytes), f"dropped events {snap.dropped:,.0f}")
            alerts = ", ".join(snap.alerts) if snap.alerts else "none"
            table.add_row("alerts", Text(alerts[:14], style="bold red" if snap.alerts else "dim"),
                          Text(alerts[14:60], style="bold red") if len(alerts) > 14 else "")
        footer = Text(f"up {uptime // 3600:02d}:{uptime // 60 % 60:02d}:{uptime % 60:02d}  every {self.interval:g}s  "
                      f"rates over {RATE_WINDOW:g}s, sparklines {HISTORY / 60:g} min  Ctrl-C quits", style="dim")
        parts = [table]
        if self.error:
            parts.insert(0, Text(self.error[:76], style="bold red"))
        parts.append(footer)
        return Panel(Group(*parts), title=title, title_align="left", width=80)

    def run(self, once: bool = False) -> int:
        from rich.console import Console
        from rich.live import Live

        console = Console()
        if once:
            self.step()
            time.sleep(min(self.interval, 1.0))
            console.print(self.render(self.step()))
            return 1 if self.error else 0
        try:
            with Live(self.render(self.step()), console=console, screen=True, auto_refresh=False) as live:
                while True:
                    time.sleep(self.interval)
                    live.update(self.render(self.step()), refresh=True)
        except KeyboardInterrupt:
            return 0


def run(turbo: Any = None, *, url: str | None = None, interval: float = 1.0, once: bool = False) -> int:
    """Show the dashboard for ``turbo`` (in process) or ``url`` (a /metrics endpoint) until Ctrl-C."""
    if (turbo is None) == (url is None):
        raise ValueError("give either a Turbo or a metrics URL")
    source = InProcess(turbo) if turbo is not None else MetricsURL(url)
    return Dashboard(source, interval).run(once=once)
