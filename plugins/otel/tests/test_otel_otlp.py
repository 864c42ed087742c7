"""``endpoint:``: the sink's own tracer provider exports OTLP over HTTP. Checked against a receiver
on loopback that decodes what arrives with the OTLP protobuf definitions (opentelemetry-proto), as
a Collector's OTLP/HTTP receiver does: no Collector binary is packaged on PyPI, npm or Debian
(the plugin's CHANGELOG says how it was checked once against Arize Phoenix, a real receiver)."""

import gzip
import http.server
import threading

import dspy
import pytest

import dspy_turbo

pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason="the [otlp] extra")
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402


class Receiver(http.server.ThreadingHTTPServer):
    """POST /v1/traces: one ExportTraceServiceRequest per request, kept with its headers."""

    def __init__(self):
        self.requests: list[tuple[dict, ExportTraceServiceRequest]] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/traces"

    def spans(self):
        return [(resource, span) for _, request in self.requests for resource in request.resource_spans
                for scope in resource.scope_spans for span in scope.spans]


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.server.requests.append(({k.lower(): v for k, v in self.headers.items()}, request))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def attributes(span):
    out = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value"))
    return out


def test_spans_reach_an_otlp_http_receiver(make_turbo, lm, receiver):
    turbo = make_turbo({"cache": {"tiers": [{"type": "memory"}]}, "metrics": {"sinks": [{
        "type": "otel", "endpoint": receiver.url, "service_name": "qa-service",
        "headers": {"authorization": "Bearer otlp-token-123"}}]}}).install()
    predict = dspy.Predict("question -> answer")
    predict(question="Where is Zanzibar?")
    predict(question="Where is Zanzibar?")
    assert turbo.flush_events(10), "flush exports what the sink's provider holds"
    got = receiver.spans()
    assert sorted(span.name for _, span in got) == ["chat openai/gpt-4o-mini", "dspy_turbo.cache.lookup",
                                                   "dspy_turbo.cache.lookup"]
    resource = {kv.key: kv.value.string_value for kv in got[0][0].resource.attributes}
    assert resource["service.name"] == "qa-service"
    (call,) = [attributes(span) for _, span in got if span.name.startswith("chat")]
    usage = lm.history[0]["usage"]  # the call's (the hit's entry has none)
    assert call["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert call["gen_ai.request.model"] == "openai/gpt-4o-mini"
    results = sorted(attributes(span)["dspy_turbo.cache.result"] for _, span in got if span.name.endswith("lookup"))
    assert results == ["hit", "miss"]
    assert all(headers["authorization"] == "Bearer otlp-token-123" for headers, _ in receiver.requests)
    assert b"Zanzibar" not in b"".join(request.SerializeToString() for _, request in receiver.requests)
    assert "otlp-token-123" not in repr(turbo.sinks[0].options) + str(turbo.settings.model_dump())


def test_an_endpoint_that_is_down_never_breaks_the_program(make_turbo, lm, unused_port):
    turbo = make_turbo({"cache": {"tiers": [{"type": "memory"}]}, "metrics": {"flush_timeout": "1s", "sinks": [{
        "type": "otel", "endpoint": f"http://127.0.0.1:{unused_port}/v1/traces", "timeout": 0.5}]}}).install()
    predict = dspy.Predict("question -> answer")
    assert predict(question="q").answer == predict(question="q").answer
    turbo.flush_events(3)
    assert turbo.stats()["lm_calls"] == 1


def test_endpoint_without_the_otlp_exporter_names_the_extra(make_turbo, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(dspy_turbo.ConfigError) as info:
        make_turbo({"metrics": {"sinks": [{"type": "otel", "endpoint": "http://127.0.0.1:4318/v1/traces"}]}})
    assert "metrics.sinks[0]" in str(info.value) and "dspy-turbo-otel[otlp]" in str(info.value)
