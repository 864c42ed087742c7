"""The ``otel`` metric sink: an OpenTelemetry span for every cache lookup and every LM call.

::

    metrics:
      sinks:
        - type: otel
          tracer_provider: global   # the application's (opentelemetry.trace.set_tracer_provider), or module:attribute
          # or a provider of the sink's own, exporting OTLP over HTTP (pip install 'dspy-turbo-otel[otlp]'):
          # endpoint: http://127.0.0.1:4318/v1/traces
          # headers: {authorization: "Bearer ..."}
          # service_name: my-app
          include_details: false    # cache keys (hashes) and error messages; off by default

Spans and their attributes (the GenAI semantic conventions where they apply, the same model and
provider values as the Prometheus sink's labels):

- an LM call (``lm_call``): ``chat <model>``, kind CLIENT, with ``gen_ai.operation.name``,
  ``gen_ai.request.model``, ``gen_ai.provider.name`` (and the older ``gen_ai.system``),
  ``gen_ai.usage.input_tokens``/``output_tokens``, ``dspy_turbo.cost_usd``; a failed call has
  status ERROR and ``error.type``;
- a cache lookup (``hit``, ``miss``): ``dspy_turbo.cache.lookup``, with ``dspy_turbo.cache.result``
  (``hit``/``miss``), ``dspy_turbo.cache.tier`` (the tier that answered, ``semantic`` for a semantic
  hit), ``dspy_turbo.semantic.similarity`` on a semantic hit, the model of the cached answer and
  what it saved (``dspy_turbo.saved.tokens``, ``dspy_turbo.saved.cost_usd``);
- a request served by another caller's LM call (``coalesced``, single-flight):
  ``dspy_turbo.cache.coalesced``, ``dspy_turbo.cache.result: coalesced``, with what it saved. The
  core reports no wait time for it: the span has no duration, at the moment the answer arrived.

Every span has ``dspy_turbo.namespace``. No span carries request text: events have none; keys
(hashes of requests) and error messages (which may quote one) only with ``include_details: true``.

The parent of each span is the caller's current span (a span the program opened around
``program(...)``): the sink sets ``caller_context``, so the core hands it every event inside a
copy of the context the event was emitted in, on the sink's own thread, and the span's start
and end are the event's (``time - latency``, ``time``). Spans are made and exported off the
program's thread: a slow or broken exporter never slows or breaks the program.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from pydantic import Field, field_validator

from dspy_turbo.plugin.components import ComponentUnavailable, Options, SecretStr, import_object
from dspy_turbo.plugin.sink import Event, MetricSink

from . import attributes as attr

logger = logging.getLogger("dspy_turbo_otel")

_VERSION = "0.1.0"


class OtelOptions(Options):
    tracer_provider: str = "global"
    """``global``: the provider the application set (``opentelemetry.trace.set_tracer_provider``, also after
    the Turbo is built), as OpenTelemetry instrumentations use it; or ``package.module:attribute``. Ignored with ``endpoint``."""
    endpoint: str | None = None
    """An OTLP/HTTP traces URL (``http://127.0.0.1:4318/v1/traces``): the sink exports from a tracer provider of
    its own, with a batch span processor. Needs ``pip install 'dspy-turbo-otel[otlp]'``."""
    headers: dict[str, SecretStr] = {}
    """HTTP headers for ``endpoint`` (an ``authorization`` token): secrets, masked everywhere."""
    service_name: str = "dspy-turbo"
    """``service.name`` of the sink's own provider (with ``endpoint``)."""
    timeout: float = Field(default=10.0, gt=0)
    """Seconds an export to ``endpoint`` may take."""
    include_details: bool = False
    """Put cache keys (hashes) and error messages on spans. Off: nothing derived from a request."""

    @field_validator("tracer_provider")
    @classmethod
    def _provider_form(cls, value: str) -> str:
        if value != "global" and ":" not in value:
            raise ValueError(f"tracer_provider must be 'global' or 'package.module:attribute', got {value!r}")
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint_form(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"endpoint must be an http:// or https:// URL (OTLP over HTTP), got {value!r}")
        return value


def _resolve_provider(spec: str):
    try:
        obj = import_object(spec)
    except (ImportError, AttributeError) as exc:
        raise ComponentUnavailable(f"otel sink: cannot find the tracer provider {spec!r}: {exc}") from None
    if not callable(getattr(obj, "get_tracer", None)):
        raise ComponentUnavailable(f"otel sink: {spec!r} is a {type(obj).__name__}, not an OpenTelemetry TracerProvider")
    return obj


def _otlp_exporter_class():
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise ComponentUnavailable("otel sink: `endpoint` exports OTLP over HTTP, which needs "
                                   "opentelemetry-exporter-otlp-proto-http: pip install 'dspy-turbo-otel[otlp]'",
                                   package="dspy-turbo-otel[otlp]") from None
    return OTLPSpanExporter


def _own_provider(options: OtelOptions):
    OTLPSpanExporter = _otlp_exporter_class()  # noqa: N806
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: options.service_name}))
    headers = {name: value.get_secret_value() for name, value in options.headers.items()}
    exporter = OTLPSpanExporter(endpoint=options.endpoint, headers=headers or None, timeout=options.timeout)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class OtelSink(MetricSink):
    name = "otel"
    Options = OtelOptions
    caller_context = True  # each event arrives in the caller's context: its current span is the parent

    @classmethod
    def check_available(cls, options: OtelOptions) -> None:
        """The OTLP exporter for ``endpoint``, the provider ``tracer_provider`` names: found, or a
        config error at the sink's path (``dspy-turbo check`` says so too)."""
        if options.endpoint is not None:
            _otlp_exporter_class()
        elif options.tracer_provider != "global":
            _resolve_provider(options.tracer_provider)

    def __init__(self, options: OtelOptions | None = None):
        super().__init__(options)
        opts = self.options
        self._own = None
        if opts.endpoint is not None:
            self._own = provider = _own_provider(opts)
        elif opts.tracer_provider != "global":
            provider = _resolve_provider(opts.tracer_provider)
        else:
            provider = None  # the global one; a proxy until the application sets it
        self.tracer = trace.get_tracer("dspy_turbo_otel", _VERSION, tracer_provider=provider, schema_url=attr.SCHEMA_URL)
        self._handlers = {"hit": self._lookup, "miss": self._lookup, "coalesced": self._coalesced,
                          "lm_call": self._lm_call}

    def __call__(self, event: Event) -> None:
        handler = self._handlers.get(event.kind)
        if handler is not None:
            handler(event)

    # -- spans -------------------------------------------------------------------------------

    def _span(self, name: str, event: Event, attributes: dict[str, Any], kind: SpanKind = SpanKind.INTERNAL):
        end = _ns(event.time)
        start = end - _ns(event.latency) if event.latency and event.latency > 0 else end
        if event.namespace is not None:
            attributes[attr.NAMESPACE] = event.namespace
        if event.key is not None and self.options.include_details:
            attributes[attr.CACHE_KEY] = event.key
        span = self.tracer.start_span(name, kind=kind, attributes=attributes, start_time=start)
        if event.error:
            span.set_attribute(attr.ERROR_TYPE, event.error.split(":", 1)[0])
            span.set_status(Status(StatusCode.ERROR, event.error if self.options.include_details else None))
        span.end(end_time=end)

    def _model(self, attributes: dict[str, Any], model: str | None) -> None:
        if not model:
            return
        attributes[attr.REQUEST_MODEL] = model
        provider = attr.provider(model)
        if provider is not None:
            attributes[attr.PROVIDER_NAME] = attributes[attr.SYSTEM] = provider

    def _saved(self, attributes: dict[str, Any], event: Event) -> None:
        self._model(attributes, event.model)
        if event.tokens:
            attributes[attr.SAVED_TOKENS] = event.tokens
        if event.cost:
            attributes[attr.SAVED_COST] = event.cost

    def _lookup(self, event: Event) -> None:
        attributes: dict[str, Any] = {attr.CACHE_RESULT: event.kind}
        if event.kind == "hit":
            if event.tier is not None:
                attributes[attr.CACHE_TIER] = event.tier
            similarity = (event.extra or {}).get("similarity")
            if isinstance(similarity, (int, float)):
                attributes[attr.SIMILARITY] = float(similarity)
            self._saved(attributes, event)
        self._span(attr.LOOKUP_SPAN, event, attributes)

    def _coalesced(self, event: Event) -> None:
        attributes: dict[str, Any] = {attr.CACHE_RESULT: "coalesced"}
        self._saved(attributes, event)
        self._span(attr.COALESCED_SPAN, event, attributes)

    def _lm_call(self, event: Event) -> None:
        attributes: dict[str, Any] = {attr.OPERATION_NAME: attr.CHAT}
        self._model(attributes, event.model)
        extra = event.extra or {}
        for name, key in ((attr.INPUT_TOKENS, "input_tokens"), (attr.OUTPUT_TOKENS, "output_tokens")):
            count = extra.get(key)
            if isinstance(count, int) and count >= 0:
                attributes[name] = count
        if event.cost is not None:
            attributes[attr.COST] = event.cost
        name = f"{attr.CHAT} {event.model}" if event.model else attr.CHAT
        self._span(name, event, attributes, SpanKind.CLIENT)

    # -- lifecycle -----------------------------------------------------------------------------

    def flush(self) -> None:
        """``turbo.flush_events()``: the sink's own provider exports what it holds (the application's
        provider is the application's to flush)."""
        if self._own is not None:
            self._own.force_flush(_ns(self.options.timeout) // 1_000_000)

    def close(self) -> None:
        if self._own is not None:
            self._own.shutdown()
            self._own = None
