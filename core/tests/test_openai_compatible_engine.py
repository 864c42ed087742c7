"""The lean OpenAI-compatible engine, side by side with DSPy's default engines on a real HTTP server.

Every test runs the same calls through ``dspy.LM(model, api_base=...)`` with DSPy's default
engine selection (native lm15 for chat, LiteLLM for text completions) and through
``openai_compatible_lm(model, api_base=...)``, against the loopback OpenAI-compatible
server, and asserts the same wire requests, outputs, usage, history fields, errors and
cache behaviour.
"""

from __future__ import annotations

import asyncio
import copy

import dspy
import pytest
from dspy.clients.cache import Cache
from dspy.utils.exceptions import LMAuthError, LMConfigurationError, LMInvalidRequestError, LMRateLimitError, LMServerError

from dspy_turbo.engines.openai_compatible import (
    AsyncOpenAICompatibleEngine,
    OpenAICompatibleEngine,
    openai_compatible_lm,
)

KEY = "sk-test-not-a-secret"
KNOWN, UNKNOWN = "openai/gpt-4o-mini", "openai/my-selfhosted-7b"
# What a user reads in lm.history (cost aside: DSPy does not price a custom engine's calls).
HISTORY = ("prompt", "messages", "kwargs", "outputs", "usage", "model", "response_model", "model_type")


def _lm(engine: str, server, model: str = KNOWN, **kwargs):
    if engine == "dspy":
        return dspy.LM(model, api_base=server.url, api_key=KEY, **kwargs)
    return openai_compatible_lm(model, api_base=server.url, api_key=KEY, **kwargs)


@pytest.fixture
def dspy_cache():
    """A fresh DSPy memory cache for the test, as a program without a Turbo has."""
    previous = dspy.cache
    dspy.cache = Cache(enable_disk_cache=False, enable_memory_cache=True, disk_cache_dir=None)
    yield dspy.cache
    dspy.cache = previous


def _history(lm) -> list[dict]:
    def plain(key, value):  # JSONAdapter's response_format is a model class built per call: compare its schema
        if key == "kwargs" and isinstance(value.get("response_format"), type):
            return {**value, "response_format": value["response_format"].model_json_schema()}
        return value

    return [{key: plain(key, entry.get(key)) for key in HISTORY} for entry in lm.history]


def _chat_calls(lm, asynchronous: bool = False) -> list:
    """A mix of what programs do: a plain prompt, messages with settings, Predict with each adapter."""
    predict = dspy.Predict("question -> answer")
    typed = dspy.Predict("question -> answer: int, confident: bool")

    def sync_run():
        out = [lm("plain prompt"), lm(messages=[{"role": "system", "content": "be brief"},
                                                {"role": "user", "content": "hello"}], temperature=0.2, max_tokens=64,
                                      stop=["\n\n"], seed=7)]
        with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
            out.append(predict(question="what is 2 + 2?").toDict())
            out.append(typed(question="how many legs has a cat?").toDict())
        with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
            out.append(typed(question="how many legs has a bird?").toDict())
        return out

    async def async_run():
        out = [await lm.acall("plain prompt"),
               await lm.acall(messages=[{"role": "system", "content": "be brief"},
                                        {"role": "user", "content": "hello"}], temperature=0.2, max_tokens=64,
                              stop=["\n\n"], seed=7)]
        with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
            out.append((await predict.acall(question="what is 2 + 2?")).toDict())
            out.append((await typed.acall(question="how many legs has a cat?")).toDict())
        with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
            out.append((await typed.acall(question="how many legs has a bird?")).toDict())
        return out

    return asyncio.run(async_run()) if asynchronous else sync_run()


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("model", [KNOWN, UNKNOWN], ids=["known name", "unknown name"])
def test_chat_same_wire_requests_outputs_usage_and_history(model, asynchronous, openai_server, dspy_cache):
    results = {}
    for engine in ("dspy", "lean"):
        openai_server.reset()
        lm = _lm(engine, openai_server, model, cache=False)
        outputs = _chat_calls(lm, asynchronous)
        results[engine] = (outputs, copy.deepcopy(openai_server.bodies), _history(lm))
    assert results["lean"][1] == results["dspy"][1]  # byte for byte what the server received
    assert results["lean"][0] == results["dspy"][0]
    assert results["lean"][2] == results["dspy"][2]
    assert len(results["dspy"][1]) == 5 and all(entry["usage"]["total_tokens"] > 0 for entry in results["dspy"][2])


def test_n_makes_one_request_per_candidate_as_dspy_does(openai_server, dspy_cache):
    seen = {}
    for engine in ("dspy", "lean"):
        openai_server.reset()
        lm = _lm(engine, openai_server, cache=False)
        seen[engine] = (lm("give me two", n=2, temperature=1.0), copy.deepcopy(openai_server.bodies),
                        _history(lm)[-1]["usage"])
    assert seen["lean"] == seen["dspy"]
    assert len(seen["dspy"][0]) == 2 and len(seen["dspy"][1]) == 2


def test_cost_is_what_dspy_gives_a_custom_engine(openai_server, dspy_cache):
    lm = _lm("lean", openai_server, KNOWN, cache=False)
    lm("price me")
    entry = lm.history[-1]
    assert entry["cost"] is None  # DSPy prices only its own engines' calls
    assert entry["cost_details"] == {"kind": "unknown", "reason": "custom engine has no pricing provider"}
    assert entry["usage"]["prompt_tokens"] > 0


async def _chunks(program, **inputs) -> tuple[list[str], dict]:
    stream = dspy.streamify(program, stream_listeners=[dspy.streaming.StreamListener(signature_field_name="answer")])
    pieces, final = [], None
    async for item in stream(**inputs):
        if isinstance(item, dspy.streaming.StreamResponse):
            pieces.append(item.chunk)
        elif isinstance(item, dspy.Prediction):
            final = item.toDict()
    return pieces, final


@pytest.mark.parametrize("model_type", ["chat", "text"])
def test_streaming_sends_the_same_chunks(model_type, openai_server, dspy_cache):
    program = dspy.Predict("question -> answer")
    seen = {}
    for engine in ("dspy", "lean"):
        openai_server.reset()
        lm = _lm(engine, openai_server, cache=False, model_type=model_type)
        with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
            pieces, final = asyncio.run(_chunks(program, question="stream this answer, please"))
        body = openai_server.bodies[-1]
        seen[engine] = (pieces, final, body.get("stream"), body.get("prompt") or body.get("messages"),
                        _history(lm)[-1]["outputs"])
    if model_type == "text":
        # DSPy's LiteLLM text path answers a streamed call whole (no chunks reach the listener);
        # DSPy asks a custom engine for a stream, and this one streams. The answer is the same.
        assert seen["dspy"][0] == [] and "".join(seen["lean"][0]) == seen["lean"][1]["answer"]
        assert seen["lean"][2] is True
        assert seen["lean"][1:2] + seen["lean"][3:] == seen["dspy"][1:2] + seen["dspy"][3:]
        return
    assert seen["lean"] == seen["dspy"]
    assert len(seen["dspy"][0]) > 2 and seen["dspy"][2] is True


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_text_completions_as_dspy_sends_them(asynchronous, openai_server, dspy_cache):
    seen = {}
    for engine in ("dspy", "lean"):
        openai_server.reset()
        lm = _lm(engine, openai_server, UNKNOWN, cache=False, model_type="text")
        predict = dspy.Predict("question -> answer")

        async def run(lm=lm):
            return [await lm.acall("complete this"), await lm.acall("again", temperature=0.4, max_tokens=30, stop=["x"])]

        outputs = asyncio.run(run()) if asynchronous else [lm("complete this"),
                                                           lm("again", temperature=0.4, max_tokens=30, stop=["x"])]
        with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
            outputs.append(predict(question="what is 5 + 5?").toDict())
        usage = [{key: entry["usage"].get(key) for key in ("prompt_tokens", "completion_tokens", "total_tokens")}
                 for entry in lm.history]
        seen[engine] = (outputs, copy.deepcopy(openai_server.bodies), usage,
                        [{key: entry[key] for key in ("outputs", "model", "response_model")} for entry in lm.history])
    assert seen["lean"] == seen["dspy"]
    assert all("prompt" in body for body in seen["dspy"][1])


@pytest.mark.parametrize("status, error", [(500, LMServerError), (429, LMRateLimitError), (400, LMInvalidRequestError),
                                           (401, LMAuthError)])
@pytest.mark.parametrize("model_type", ["chat", "text"])
def test_errors_map_as_dspy_maps_them(status, error, model_type, openai_server, dspy_cache):
    raised = {}
    for engine in ("dspy", "lean"):
        lm = _lm(engine, openai_server, cache=False, num_retries=0, model_type=model_type)
        openai_server.fail_next(1, status)
        with pytest.raises(error) as caught:
            lm("fail once")
        raised[engine] = type(caught.value)
    if model_type == "chat":
        assert raised["lean"] is raised["dspy"]


@pytest.mark.parametrize("status, retried", [(500, True), (429, True), (400, False)])
def test_retries_as_dspy_retries(status, retried, openai_server, dspy_cache):
    for engine in ("dspy", "lean"):
        openai_server.reset()
        lm = _lm(engine, openai_server, cache=False, num_retries=1)
        openai_server.fail_next(1, status)
        if retried:
            assert lm("retry me") == [lm.history[-1]["outputs"][0]]
            assert openai_server.calls == 2
        else:
            with pytest.raises(LMInvalidRequestError):
                lm("retry me")
            assert openai_server.calls == 1


def test_cache_with_a_turbo_installed_is_shared_with_dspys_engine(openai_server, make_turbo):
    """The cache key is the call's, not the engine's: a call cached through DSPy's engine is a
    hit through the lean one, and the other way round, with a Turbo installed."""
    make_turbo().install()
    program = dspy.Predict("question -> answer")
    default, lean = _lm("dspy", openai_server), _lm("lean", openai_server)
    with dspy.context(lm=default, adapter=dspy.ChatAdapter()):
        first = program(question="cached once").answer
    with dspy.context(lm=lean, adapter=dspy.ChatAdapter()):
        assert program(question="cached once").answer == first
        second = program(question="cached by the lean engine").answer
    with dspy.context(lm=default, adapter=dspy.ChatAdapter()):
        assert program(question="cached by the lean engine").answer == second
    assert openai_server.calls == 2


@pytest.mark.parametrize("engine", ["dspy", "lean"])
def test_cache_hits_and_misses_with_a_turbo_installed(engine, openai_server, make_turbo):
    turbo = make_turbo().install()
    lm = _lm(engine, openai_server)
    program = dspy.Predict("question -> answer")
    with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
        answers = [program(question=q).answer for q in ("a", "b", "a", "b", "c")]
        assert asyncio.run(program.acall(question="c")).answer == answers[-1]
    assert answers[0] == answers[2] and answers[1] == answers[3]
    assert openai_server.calls == 3
    assert turbo.stats()["lm_calls"] == 3


def test_one_pooled_connection_for_serial_calls(openai_server, dspy_cache):
    lm = _lm("lean", openai_server, cache=False)
    for i in range(20):
        lm(f"call {i}")
    stats = lm.engine._transport.pool_stats()
    assert stats["total_opened"] == 1 and stats["in_use"] == 0


def test_concurrent_threads_share_the_pool(openai_server, dspy_cache, run_threads):
    lm = _lm("lean", openai_server, cache=False)
    wrong = []

    def calls():
        for i in range(5):
            text = f"thread call {i}"
            if text not in lm(text)[0]:
                wrong.append(text)

    run_threads(calls, 8)
    assert wrong == [] and openai_server.calls == 40
    assert lm.engine._transport.pool_stats()["total_opened"] <= 8


def test_async_calls_make_no_thread_hop(openai_server, dspy_cache, monkeypatch):
    """DSPy's native async engine resolves every call in a worker thread; the lean one does not."""
    lm = _lm("lean", openai_server, cache=False)
    hops = []
    original = asyncio.to_thread

    async def counting(fn, *args, **kwargs):
        hops.append(getattr(fn, "__qualname__", repr(fn)))
        return await original(fn, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counting)

    engine = lm._async_engine_spec
    assert isinstance(engine, AsyncOpenAICompatibleEngine)

    async def run():
        return [await engine.complete(_request(lm, f"async {i}")) for i in range(3)]

    responses = asyncio.run(run())
    assert [response.message.parts[0].text.endswith(f"async {i}") for i, response in enumerate(responses)] == [True] * 3
    assert hops == []


def _request(lm, text: str):
    from dspy.lm15 import Message, Request

    return Request(model=lm.model, messages=(Message.user(text),))


def test_the_proxy_environment_is_read_once(monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert OpenAICompatibleEngine("http://models.internal:8000/v1", KEY).settings.proxy == "http://proxy.invalid:3128"
    monkeypatch.setenv("NO_PROXY", "models.internal")
    engine = OpenAICompatibleEngine("http://models.internal:8000/v1", KEY)
    assert engine.settings.proxy is None
    assert engine.settings.transport_kwargs()["trust_env"] is False
    explicit = OpenAICompatibleEngine("http://models.internal:8000/v1", KEY, proxy="http://other.invalid:1")
    assert explicit.settings.proxy == "http://other.invalid:1"


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="base_url must be an http"):
        OpenAICompatibleEngine("localhost:8000", KEY)
    with pytest.raises(ValueError, match="model_type must be one of chat, text"):
        OpenAICompatibleEngine("http://localhost:8000/v1", KEY, model_type="responses")


def test_a_closed_engine_refuses_calls(openai_server, dspy_cache):
    lm = _lm("lean", openai_server, cache=False)
    lm("before close")
    lm.engine.close()
    with pytest.raises(LMConfigurationError, match="closed"):
        lm("after close")


def test_saved_and_loaded_without_the_key(openai_server, dspy_cache, tmp_path):
    lm = _lm("lean", openai_server, cache=False, timeout=30)
    state = lm.engine.dump_state()
    assert KEY not in repr(state) and state["base_url"] == openai_server.url.rstrip("/")
    again = OpenAICompatibleEngine.load_state(state)
    assert again.settings.timeouts == lm.engine.settings.timeouts
    program = dspy.Predict("question -> answer")
    program.lm = lm
    program.save(tmp_path / "program.json")
    assert KEY not in (tmp_path / "program.json").read_text()


@pytest.mark.parametrize("engine", ["dspy", "lean"])
def test_two_endpoints_are_never_one_cache_entry(engine, openai_server, make_turbo):
    """With a Turbo installed, the same call to two servers under one model name makes one LM
    call per server (the endpoint is part of the key), with either engine."""
    from dspy_turbo.engines.openai_server import OpenAIServer

    make_turbo().install()
    program = dspy.Predict("question -> answer")
    with OpenAIServer() as other:
        for server in (openai_server, other, openai_server, other):
            with dspy.context(lm=_lm(engine, server), adapter=dspy.ChatAdapter()):
                program(question="same question, two servers")
        assert (openai_server.calls, other.calls) == (1, 1)


@pytest.mark.parametrize("model_type", ["chat", "text"])
def test_an_unreachable_endpoint_is_a_transport_error(model_type, dspy_cache):
    import socket

    from dspy.utils.exceptions import LMTransportError

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    class Closed:
        url = f"http://127.0.0.1:{port}/v1"

    engines = ("dspy", "lean") if model_type == "chat" else ("lean",)
    for engine in engines:
        lm = _lm(engine, Closed, cache=False, num_retries=0, model_type=model_type)
        with pytest.raises(LMTransportError):
            lm("nobody listens")


@pytest.mark.parametrize("model_type", ["chat", "text"])
def test_a_failed_stream_raises_as_dspy_raises(model_type, openai_server, dspy_cache):
    program = dspy.Predict("question -> answer")
    engines = ("dspy", "lean") if model_type == "chat" else ("lean",)
    for engine in engines:
        lm = _lm(engine, openai_server, cache=False, num_retries=0, model_type=model_type)
        openai_server.fail_next(1, 429)
        with dspy.context(lm=lm, adapter=dspy.ChatAdapter()), pytest.raises(LMRateLimitError) as caught:
            asyncio.run(_chunks(program, question="a stream that fails"))
        assert caught.value.retry_after == 0  # the server's retry-after header reached the error
