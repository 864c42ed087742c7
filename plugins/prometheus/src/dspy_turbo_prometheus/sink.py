"""The ``prometheus`` metric sink: events -> Prometheus metrics, served on ``/metrics``.

Three ways to expose them:

* ``port: 9464`` (the default): the sink serves its own registry on ``host:port``.
* ``registry: default`` (or ``"package.module:attribute"``) with ``port: null``: the
  metrics join an existing prometheus_client registry that the application serves.
* several worker processes: set ``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's
  multiprocess mode) before the workers start; each worker writes its metrics there and
  one process serves the sum, with ``port`` on one of them or a separate
  ``python -m dspy_turbo_prometheus --port 9464`` (:func:`serve_multiprocess`).

prometheus_client is imported when a sink is built, never at plugin registration.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
import weakref
from typing import Any

from pydantic import Field, field_validator

from dspy_turbo.plugin import events as ev
from dspy_turbo.plugin.components import Options, import_object
from dspy_turbo.plugin.sink import Event, MetricSink

logger = logging.getLogger("dspy_turbo_prometheus")

# One Metrics per registry: two Turbos joining the default registry share the families
# (prometheus_client refuses to register a name twice).
_SHARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()
_MULTIPROCESS_METRICS = None


class PrometheusOptions(Options):
    host: str = "127.0.0.1"
    """Address to serve ``/metrics`` on: this machine only by default; ``0.0.0.0`` (every interface) for a
    Prometheus that scrapes from elsewhere, behind your firewall: the metrics name models and spend."""
    port: int | None = Field(default=9464, ge=0, le=65535)
    """Port for ``/metrics`` (9464: the OpenTelemetry Prometheus exporter's); 0 picks a free one; null serves nothing."""
    registry: str = "own"
    """``own`` (a registry for this sink), ``default`` (prometheus_client.REGISTRY), or ``module:attribute``."""

    @field_validator("registry")
    @classmethod
    def _registry_form(cls, value: str) -> str:
        if value not in ("own", "default") and ":" not in value:
            raise ValueError(f"registry must be 'own', 'default' or 'package.module:attribute', got {value!r}")
        return value


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")


def _resolve_registry(spec: str):
    import prometheus_client

    if spec == "own":
        return prometheus_client.CollectorRegistry(auto_describe=True)
    if spec == "default":
        return prometheus_client.REGISTRY
    try:
        obj = import_object(spec)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"prometheus sink: cannot find the registry {spec!r}: {exc}") from None
    if not hasattr(obj, "register"):
        raise ValueError(f"prometheus sink: {spec!r} is a {type(obj).__name__}, not a prometheus_client registry")
    return obj


def _metrics_for(registry):
    from .metrics import Metrics

    global _MULTIPROCESS_METRICS
    with _SHARED_LOCK:
        if registry is None:  # multiprocess: values live in files, one set per process
            if _MULTIPROCESS_METRICS is None:
                _MULTIPROCESS_METRICS = Metrics(None)
            return _MULTIPROCESS_METRICS
        if registry not in _SHARED:
            _SHARED[registry] = Metrics(registry)
        return _SHARED[registry]


def serve(registry, host: str, port: int):
    """Start ``/metrics`` on ``host:port``; a clear error naming the port when it is taken."""
    import prometheus_client

    try:
        return prometheus_client.start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            hint = (" In multiprocess mode (PROMETHEUS_MULTIPROC_DIR), set port: null in the workers and serve the sum "
                    "from one process: python -m dspy_turbo_prometheus --port N." if multiprocess_dir() else "")
            raise OSError(exc.errno, f"dspy-turbo-prometheus cannot serve /metrics on {host}:{port}: port {port} is already "
                                     "in use (another exporter, or another Turbo in this process); set metrics.sinks[].port "
                                     f"to a free port, 0 for any free port, or null to serve nothing.{hint}") from None
        raise OSError(exc.errno, f"dspy-turbo-prometheus cannot serve /metrics on {host}:{port}: {exc.strerror}") from None


def multiprocess_registry(path: str | None = None):
    """A registry that sums every worker's metrics from the multiprocess directory."""
    from prometheus_client import CollectorRegistry, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=path or multiprocess_dir())
    return registry


def serve_multiprocess(port: int = 9464, host: str = "127.0.0.1", path: str | None = None):
    """Serve the sum of all workers' metrics (``PROMETHEUS_MULTIPROC_DIR``), e.g. from a gunicorn master."""
    path = path or multiprocess_dir()
    if not path:
        raise ValueError("set PROMETHEUS_MULTIPROC_DIR (or pass path=) to the directory the workers write to")
    return serve(multiprocess_registry(path), host, port)


def _provider(model: str) -> str:
    return model.split("/", 1)[0] if "/" in model else "unknown"


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # peak, in KiB on Linux


class PrometheusSink(MetricSink):
    name = "prometheus"
    Options = PrometheusOptions

    def __init__(self, options: PrometheusOptions | None = None, turbo: Any = None):
        super().__init__(options)
        self.turbo = turbo
        self.multiprocess = multiprocess_dir() is not None
        if self.multiprocess:
            self.registry = multiprocess_registry()  # what /metrics serves: every worker's sum
            self.metrics = _metrics_for(None)
        else:
            self.registry = _resolve_registry(self.options.registry)
            self.metrics = _metrics_for(self.registry)
        self._dropped_seen: dict[str, int] = {}
        self._children: dict[tuple, Any] = {}
        self._hit_series: dict[tuple, tuple] = {}
        self._server = self._thread = None
        self.url: str | None = None
        self.refresh()
        if self.options.port is not None:
            self._server, self._thread = serve(self.registry, self.options.host, self.options.port)
            port = self._server.server_port
            shown = "127.0.0.1" if self.options.host in ("0.0.0.0", "") else self.options.host
            self.url = f"http://{shown}:{port}/metrics"
            logger.info("dspy-turbo metrics on %s", self.url)

    @classmethod
    def from_options(cls, options: PrometheusOptions, turbo: Any = None) -> PrometheusSink:
        return cls(options, turbo)

    @classmethod
    def read_running(cls, options: PrometheusOptions | None, url: str | None = None) -> dict[str, Any] | None:
        """For ``dspy-turbo stats``: the hit rates a running process serves on ``url``, else
        where ``options`` serve them (None when they serve nothing); an ``error`` when unreadable."""
        if url is None:
            if options is None or not options.port:
                return None
            host = "127.0.0.1" if options.host in ("0.0.0.0", "::", "") else options.host
            url = f"http://{host}:{options.port}/metrics"
        from .dashboard import MetricsURL

        try:
            snap = MetricsURL(url, timeout=2.0).sample()
        except Exception as exc:
            return {"url": url, "error": str(exc)}
        lookups = snap.requests
        return {"url": url, "lookups": lookups, "hit_rate": sum(snap.hits.values()) / lookups if lookups else 0.0,
                "hit_rate_by_tier": {t: h / lookups for t, h in sorted(snap.hits.items())} if lookups else {}}

    # -- events --------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        self.handle_batch((event,))

    def handle_batch(self, events) -> None:
        """Counters are summed over the batch and incremented once per series (each inc takes a lock)."""
        pending: dict[Any, float] = {}

        def add(child, amount) -> None:
            pending[child] = pending.get(child, 0.0) + amount

        for event in events:
            self._handle(event, add)
        for child, amount in pending.items():
            if amount:
                child.inc(amount)

    def _handle(self, event: Event, add) -> None:
        m = self.metrics
        kind = event.kind
        extra = event.extra or {}
        if kind == ev.HIT:  # the most frequent event: its four series in one lookup
            series = self._hit_series.get((event.tier, event.model))
            if series is None:
                model = event.model or "unknown"
                series = self._hit_series[(event.tier, event.model)] = (
                    self._child(m.lookups, event.tier or "?", "hit"), self._child(m.lookup_duration, "hit"),
                    self._child(m.tokens, model, "saved"), self._child(m.dollars, model, "saved"))
            lookups, duration, tokens, dollars = series
            add(lookups, 1)
            if event.latency is not None:
                duration.observe(event.latency)
            add(tokens, event.tokens)
            add(dollars, event.cost or 0.0)
            if "similarity" in extra:
                self._child(m.similarity, "hit").observe(float(extra["similarity"]))
            if extra.get("level") == "item":
                add(self._child(m.item_hits, event.tier or "?"), 1)
        elif kind == ev.MISS:
            add(self._child(m.lookups, "none", "miss"), 1)
            if event.latency is not None:
                self._child(m.lookup_duration, "miss").observe(event.latency)
            if "similarity" in extra:
                self._child(m.similarity, "near_miss").observe(float(extra["similarity"]))
        elif kind == ev.LM_CALL:
            self._lm_call(event, extra, add)
        elif kind == ev.COALESCED:
            model = event.model or "unknown"
            add(self._child(m.coalesced, model), 1)
            add(self._child(m.tokens, model, "saved"), event.tokens)
            add(self._child(m.dollars, model, "saved"), event.cost or 0.0)
        elif kind == ev.STORE:
            add(self._child(m.stores, event.tier or "?", event.reason or "write"), 1)
            if extra.get("level") == "item":
                add(self._child(m.item_stores, event.tier or "?"), 1)
        elif kind == ev.SKIP_STORE:
            add(self._child(m.store_skips, event.reason or "?"), 1)
        elif kind == ev.EVICT:
            add(self._child(m.evictions, event.tier or "?"), 1)
        elif kind == ev.ERROR:
            add(self._child(m.errors, event.tier or extra.get("component") or "?", event.reason or "?"), 1)
        elif kind == ev.BREAKER:
            add(self._child(m.breaker, event.tier or "?", event.reason or "?"), 1)
        elif kind == "route":
            add(self._child(m.routes, extra.get("tier") or "?", event.model or "unknown", extra.get("source") or "?"), 1)
        elif kind == "route_saving":
            if event.cost and event.cost > 0:  # a counter only grows; a routing that cost more is not a saving
                add(self._child(m.dollars, event.model or "unknown", "saved_by_routing"), event.cost)
        elif kind == "timed":
            self._child(m.timed, event.reason or "?").observe(event.latency or 0.0)
            if event.error:
                add(self._child(m.timed_errors, event.reason or "?"), 1)
        elif kind == "alert":
            self._child(m.alert_active, event.reason or "?").set(1 if extra.get("state") == "firing" else 0)
        elif kind.startswith("batch"):
            add(self._child(m.batch_events, kind), 1)
            for result in ("items", "hits", "misses", "coalesced", "executed", "errors", "retries"):
                value = extra.get(result)
                if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                    add(self._child(m.batch_items, result), value)
        else:
            if "similarity" in extra:  # semantic events of their own kind: a guard's rejection, a near miss
                self._child(m.similarity, "rejected" if "reject" in kind else "near_miss").observe(float(extra["similarity"]))
            add(self._child(m.other_events, kind), 1)  # kinds from other plugins: routing, retries, ...

    def _lm_call(self, event: Event, extra: dict, add) -> None:
        m = self.metrics
        model = event.model or "unknown"
        provider = _provider(model)
        error_type = event.error.split(":", 1)[0] if event.error else ""
        add(self._child(m.lm_calls, model, "error" if event.error else "ok"), 1)
        if event.latency is not None:
            self._child(m.operation_duration, "chat", provider, model, error_type).observe(event.latency)
        if event.error:
            add(self._child(m.errors, "lm", "call"), 1)
            return
        add(self._child(m.tokens, model, "spent"), event.tokens)
        add(self._child(m.dollars, model, "spent"), event.cost or 0.0)
        for token_type in ("input", "output"):
            count = extra.get(f"{token_type}_tokens")
            if count:
                self._child(m.token_usage, "chat", provider, model, token_type).observe(count)

    def _child(self, family, *labels):
        # .labels() validates and locks on every call; a sink sees every event, so keep the children
        key = (id(family), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(*labels)
        return child

    # -- gauges and the dropped-events counter: refreshed about once a second -------------

    def refresh(self) -> None:
        m = self.metrics
        m.memory.set(_resident_bytes())
        turbo = self.turbo
        if turbo is None:
            return
        for tier in getattr(getattr(turbo, "cache", None), "tiers", ()):
            backend = tier.backend
            if getattr(backend, "name", None) != "memory":  # shared tiers' sizes cost I/O; their servers report them
                continue
            try:
                size, entries = backend.bytes_used, len(backend)
            except Exception:
                continue
            self._child(m.tier_bytes, tier.name).set(size)
            self._child(m.tier_entries, tier.name).set(entries)
        bus = getattr(turbo, "bus", None)
        if bus is not None:
            for sink, count in bus.dropped().items():
                seen = self._dropped_seen.get(sink, 0)
                if count > seen:
                    self._child(m.dropped, sink).inc(count - seen)
                    self._dropped_seen[sink] = count
                elif sink not in self._dropped_seen:
                    self._child(m.dropped, sink)  # the series exists from the start, at 0
                    self._dropped_seen[sink] = 0

    tick = refresh
    flush = refresh

    def close(self) -> None:
        self.refresh()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())  # drop this worker's live gauges

    def text(self) -> str:
        """The exposition this sink serves, as text (handy in tests and for debugging)."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()


def _main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m dspy_turbo_prometheus",
                                     description="Serve the sum of every worker's dspy-turbo metrics (multiprocess mode).")
    parser.add_argument("--port", type=int, default=9464)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--dir", default=None, help="the PROMETHEUS_MULTIPROC_DIR the workers write to")
    args = parser.parse_args(argv)
    try:
        server, _thread = serve_multiprocess(args.port, args.host, args.dir)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", flush=True)
        return 2
    print(f"serving http://{args.host}:{server.server_port}/metrics", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
