import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

# The application's tracer provider, as a program sets it once at start-up: the global one
# (OpenTelemetry allows setting it once per process), exporting to memory.
EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))


@pytest.fixture
def spans():
    """The spans the global provider finished, from this test only: ``spans()`` lists them."""
    if trace.get_tracer_provider() is not PROVIDER:
        trace.set_tracer_provider(PROVIDER)
    assert trace.get_tracer_provider() is PROVIDER, "another global tracer provider was set in this process"
    EXPORTER.clear()
    yield lambda: list(EXPORTER.get_finished_spans())
    EXPORTER.clear()


@pytest.fixture
def user_tracer(spans):
    """The program's own tracer (its spans are the parents of dspy-turbo's)."""
    return trace.get_tracer("the-users-program")
