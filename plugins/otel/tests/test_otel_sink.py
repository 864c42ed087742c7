"""The otel sink through real DSPy programs: a span per cache lookup and per LM call, with the
GenAI attributes, under the caller's own span, never with request text, never in the way."""

import asyncio
import json
import threading
import time
import types

import dspy
import pytest
from opentelemetry.trace import SpanKind, StatusCode

from dspy_turbo.engines.offline import offline_lm

QUESTION = "What is the secret plan of Zanzibar?"


def config(**sink):
    return {"cache": {"tiers": [{"type": "memory"}]}, "metrics": {"sinks": [{"type": "otel", **sink}]}}


def by_name(spans, name):
    return [s for s in spans if s.name == name]


def everything_exported(spans) -> str:
    """Every name, attribute and status text of ``spans``, as one string."""
    return "\n".join(json.dumps({"name": s.name, "attributes": dict(s.attributes or {}),
                                 "status": s.status.description, "events": [e.name for e in s.events]}, default=str)
                     for s in spans)


def test_miss_then_hit_spans_under_the_callers_span(make_turbo, lm, spans, user_tracer):
    turbo = make_turbo({**config(), "namespace": "otel-app"}).install()
    predict = dspy.Predict("question -> answer")
    with user_tracer.start_as_current_span("answer-question") as outer:
        first = predict(question=QUESTION)
        second = predict(question=QUESTION)
    assert second.answer == first.answer and lm.engine.calls == 1
    assert turbo.flush_events(5)
    got = spans()
    (user,) = by_name(got, "answer-question")
    lookups = by_name(got, "dspy_turbo.cache.lookup")
    assert [s.attributes["dspy_turbo.cache.result"] for s in lookups] == ["miss", "hit"]
    miss, hit = lookups
    (call,) = by_name(got, "chat openai/gpt-4o-mini")
    for span in (miss, hit, call):
        assert span.parent is not None and span.parent.span_id == outer.get_span_context().span_id, span.name
        assert span.context.trace_id == user.context.trace_id
        assert span.attributes["dspy_turbo.namespace"] == "otel-app"
        # the event's own times: inside the user's span, in order
        assert user.start_time - 1_000_000 <= span.start_time <= span.end_time <= user.end_time + 1_000_000
    assert miss.end_time <= call.start_time + 1_000_000 and call.end_time <= hit.start_time + 1_000_000
    assert hit.attributes["dspy_turbo.cache.tier"] == "memory"
    assert hit.attributes["gen_ai.request.model"] == "openai/gpt-4o-mini"
    assert hit.attributes["gen_ai.provider.name"] == "openai"
    usage = lm.history[0]["usage"]  # the call's (the hit's entry has none)
    assert hit.attributes["dspy_turbo.saved.tokens"] == usage["total_tokens"] > 0, "a hit saves the call's tokens"
    assert "gen_ai.usage.input_tokens" not in hit.attributes, "a hit used no tokens"
    assert "dspy_turbo.cache.tier" not in miss.attributes and miss.end_time > miss.start_time


def test_lm_call_span_has_the_genai_attributes_of_a_real_http_call(make_turbo, http_lm, openai_server, spans):
    """Against the loopback OpenAI-compatible server: model, provider and token usage as the server reported them."""
    turbo = make_turbo(config()).install()
    dspy.Predict("question -> answer")(question=QUESTION)
    assert openai_server.calls == 1
    assert turbo.flush_events(5)
    (call,) = [s for s in spans() if s.kind == SpanKind.CLIENT]
    usage = http_lm.history[-1]["usage"]
    assert call.name == "chat openai/gpt-4o-mini"
    assert call.attributes["gen_ai.operation.name"] == "chat"
    assert call.attributes["gen_ai.request.model"] == "openai/gpt-4o-mini"
    assert call.attributes["gen_ai.provider.name"] == call.attributes["gen_ai.system"] == "openai"
    assert call.attributes["gen_ai.usage.input_tokens"] == usage["prompt_tokens"] > 0
    assert call.attributes["gen_ai.usage.output_tokens"] == usage["completion_tokens"] > 0
    assert call.attributes["dspy_turbo.cost_usd"] > 0
    assert call.status.status_code == StatusCode.UNSET
    assert call.end_time - call.start_time > 0


@pytest.mark.parametrize("details", [False, True])
def test_a_failed_lm_call_is_an_error_span_its_message_only_on_request(make_turbo, lm, spans, details):
    turbo = make_turbo(config(include_details=details)).install()
    lm.engine.fail_next = 1
    with pytest.raises(Exception) as info:
        dspy.Predict("question -> answer")(question=QUESTION)
    assert turbo.flush_events(5)
    (call,) = [s for s in spans() if s.kind == SpanKind.CLIENT]
    raised = type(info.value).__name__  # DSPy's wrapper of the engine's RuntimeError
    assert call.status.status_code == StatusCode.ERROR
    assert call.attributes["error.type"] == raised
    assert (call.status.description or "").startswith(f"{raised}:") is details
    assert "gen_ai.usage.input_tokens" not in call.attributes


def test_each_thread_and_task_gets_its_own_parent(make_turbo, lm, spans, user_tracer):
    turbo = make_turbo(config()).install()
    predict = dspy.Predict("question -> answer")
    parents = {}

    def ask(name):
        with dspy.context(lm=lm, adapter=None), user_tracer.start_as_current_span(name) as span:
            parents[name] = span.get_span_context().span_id
            predict(question=f"question of {name}")

    threads = [threading.Thread(target=ask, args=(f"thread-{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    async def aask(name):
        with user_tracer.start_as_current_span(name) as span:
            parents[name] = span.get_span_context().span_id
            await predict.acall(question=f"question of {name}")

    async def main():
        await asyncio.gather(*(aask(f"task-{i}") for i in range(3)))

    asyncio.run(main())
    assert turbo.flush_events(5)
    got = spans()
    for name, span_id in parents.items():
        children = [s for s in got if s.parent is not None and s.parent.span_id == span_id]
        assert sorted(s.name for s in children) == ["chat openai/gpt-4o-mini", "dspy_turbo.cache.lookup"], name
    assert all(s.parent is not None for s in got if s.name.startswith(("chat", "dspy_turbo"))), "no orphan span"


def test_no_users_span_makes_root_spans(make_turbo, lm, spans):
    turbo = make_turbo(config()).install()
    dspy.Predict("question -> answer")(question=QUESTION)
    assert turbo.flush_events(5)
    got = spans()
    assert len(got) == 2 and all(s.parent is None for s in got)


def test_coalesced_requests_under_single_flight(make_turbo, spans, user_tracer):
    """Six threads ask the same question at once: one LM call; the others wait for it, each with a
    miss and a coalesced span under its own parent, saving the leader's tokens."""
    slow = offline_lm("openai/gpt-4o-mini", latency=0.3)
    turbo = make_turbo(config()).install()
    predict = dspy.Predict("question -> answer")
    start, parents, answers = threading.Barrier(6), {}, []

    def ask(i):
        with dspy.context(lm=slow, adapter=None), user_tracer.start_as_current_span(f"caller-{i}") as span:
            parents[span.get_span_context().span_id] = i
            start.wait()
            answers.append(predict(question=QUESTION).answer)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert slow.engine.calls == 1 and len(set(answers)) == 1
    assert turbo.flush_events(5)
    got = spans()
    (call,) = [s for s in got if s.kind == SpanKind.CLIENT]
    coalesced = by_name(got, "dspy_turbo.cache.coalesced")
    assert len(coalesced) == 5 == turbo.stats()["coalesced"]
    assert {parents[s.parent.span_id] for s in coalesced + [call]} == set(range(6)), "each under its own caller"
    for span in coalesced:
        assert span.attributes["dspy_turbo.cache.result"] == "coalesced"
        assert span.attributes["gen_ai.request.model"] == "openai/gpt-4o-mini"
        assert span.attributes["dspy_turbo.saved.tokens"] == call.attributes["gen_ai.usage.input_tokens"] + \
            call.attributes["gen_ai.usage.output_tokens"]
        assert span.start_time >= call.start_time, "served after the leader's call started"


def test_no_request_text_and_no_key_unless_asked(make_turbo, lm, spans):
    turbo = make_turbo(config()).install()
    predict = dspy.Predict("question -> answer")
    predict(question=QUESTION)
    predict(question=QUESTION)
    assert turbo.flush_events(5)
    text = everything_exported(spans())
    assert len(spans()) == 3
    assert "Zanzibar" not in text and "secret plan" not in text
    key = turbo.last_key()
    assert key and key not in text and key.rsplit(":", 1)[-1] not in text, "no key (a hash of the request) by default"


def test_include_details_adds_the_hashed_key_still_no_text(make_turbo, lm, spans):
    turbo = make_turbo(config(include_details=True)).install()
    dspy.Predict("question -> answer")(question=QUESTION)
    assert turbo.flush_events(5)
    (lookup,) = by_name(spans(), "dspy_turbo.cache.lookup")
    key = lookup.attributes["dspy_turbo.cache.key"]
    assert key.startswith(turbo.namespace + ":") and "Zanzibar" not in everything_exported(spans())


class _RaisingExporter:
    def export(self, spans):
        raise RuntimeError("collector is down")

    def shutdown(self):
        pass

    def force_flush(self, timeout_millis=30_000):
        return True


class _BlockingExporter(_RaisingExporter):
    def __init__(self):
        self.release = threading.Event()

    def export(self, spans):
        self.release.wait(30)
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS


class _RaisingTracerProvider:
    def get_tracer(self, *args, **kwargs):
        return self

    def start_span(self, *args, **kwargs):
        raise RuntimeError("tracer is broken")


def _provider_with(exporter):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


BROKEN = types.SimpleNamespace(provider=None)  # tracer_provider: "<this module>:BROKEN.provider"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["raising exporter", "blocking exporter", "raising tracer"])
def test_a_broken_exporter_never_breaks_or_slows_the_program(make_turbo, lm, kind):
    exporter = {"raising exporter": _RaisingExporter, "blocking exporter": _BlockingExporter}.get(kind)
    exporter = exporter() if exporter else None
    BROKEN.provider = _provider_with(exporter) if exporter else _RaisingTracerProvider()
    turbo = make_turbo({"cache": {"tiers": [{"type": "memory"}]},
                        "metrics": {"sinks": [{"type": "otel", "tracer_provider": f"{__name__}:BROKEN.provider"}],
                                    "flush_timeout": "0.5s"}}).install()
    predict = dspy.Predict("question -> answer")
    started = time.perf_counter()
    try:
        answers = [predict(question=f"q{i % 5}").answer for i in range(20)]
        elapsed = time.perf_counter() - started
        assert len(answers) == 20 and len(set(answers)) == 5 and lm.engine.calls == 5
        assert elapsed < 5, f"the program took {elapsed:.1f}s: the exporter slowed it"
        assert turbo.stats()["lm_calls"] == 5
        if kind == "raising tracer":
            assert turbo.flush_events(5)
            assert sum(turbo.stats()["sink_errors"].values()) == 25, "every failed span is counted, none raised"
        if kind == "blocking exporter":
            assert not turbo.flush_events(0.2), "the sink is stuck in the exporter; the program is not"
    finally:
        if kind == "blocking exporter":
            exporter.release.set()


def test_a_tracer_provider_set_after_the_turbo_is_built_gets_the_spans():
    """An application often sets its provider after its libraries are configured (a fresh process:
    OpenTelemetry sets the global provider once)."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import dspy, dspy_turbo
        from dspy_turbo.engines.offline import offline_lm
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        turbo = dspy_turbo.load({"cache": {"tiers": [{"type": "memory"}]}, "metrics": {"sinks": [{"type": "otel"}]}})
        turbo.install()
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        dspy.configure(lm=offline_lm("openai/gpt-4o-mini"), adapter=None)
        dspy.Predict("question -> answer")(question="q")
        assert turbo.flush_events(5)
        print(sorted(s.name for s in exporter.get_finished_spans()))
        turbo.close()
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "['chat openai/gpt-4o-mini', 'dspy_turbo.cache.lookup']"
