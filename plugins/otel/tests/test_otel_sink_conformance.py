"""The otel sink passes the SDK's metric sink conformance suite (its spans are what it exports)."""

import json

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dspy_turbo.testing import MetricSinkSuite
from dspy_turbo_otel.sink import OtelOptions, OtelSink

EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))


class TestOtelSinkConformance(MetricSinkSuite):
    @pytest.fixture
    def sink(self):
        EXPORTER.clear()
        sink = OtelSink.from_options(OtelOptions(tracer_provider=f"{__name__}:PROVIDER"), None)
        yield sink
        sink.close()

    @pytest.fixture
    def exported(self):
        def text(sink):
            return "\n".join(json.dumps({"name": s.name, "attributes": dict(s.attributes or {}),
                                         "status": s.status.description}, default=str)
                             for s in EXPORTER.get_finished_spans())

        return text
