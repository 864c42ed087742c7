"""The sink's options: mistakes are config errors naming their path."""

import pytest

import dspy_turbo


@pytest.mark.parametrize("sink, path, words", [
    ({"tracer_provider": "mine"}, "metrics.sinks[0].tracer_provider", "package.module:attribute"),
    ({"tracer_provider": "no_such_module_xyz:provider"}, "metrics.sinks[0]", "cannot find the tracer provider"),
    ({"tracer_provider": "dspy_turbo:load"}, "metrics.sinks[0]", "not an OpenTelemetry TracerProvider"),
    ({"endpoint": "127.0.0.1:4318"}, "metrics.sinks[0].endpoint", "http:// or https://"),
    ({"timeout": 0}, "metrics.sinks[0].timeout", "greater than 0"),
    ({"servicename": "x"}, "metrics.sinks[0]", "servicename"),
])
def test_bad_options_name_their_path(make_turbo, sink, path, words):
    with pytest.raises(dspy_turbo.ConfigError) as info:
        make_turbo({"metrics": {"sinks": [{"type": "otel", **sink}]}})
    assert path in str(info.value) and words in str(info.value)


def test_the_sink_is_found_through_its_entry_point():
    from dspy_turbo_otel.sink import OtelSink

    turbo = dspy_turbo.load({"cache": {"tiers": [{"type": "memory"}]}, "metrics": {"sinks": [{"type": "otel"}]}})
    try:
        (sink,) = turbo.sinks
        assert isinstance(sink, OtelSink) and sink.caller_context is True
    finally:
        turbo.close()
