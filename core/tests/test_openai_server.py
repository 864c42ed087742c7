"""The loopback OpenAI-compatible server answers every door DSPy's engines use."""

import asyncio

import dspy
import pytest

from dspy_turbo.engines.openai_server import OpenAIServer


@pytest.mark.parametrize("kwargs", [{}, {"engine": "litellm"}, {"model_type": "text"}, {"model_type": "responses"}],
                         ids=["chat-default-engine", "chat-litellm", "text", "responses"])
def test_a_dspy_program_gets_parsed_answers_over_http(openai_server, kwargs):
    lm = dspy.LM("openai/gpt-4o-mini", api_base=openai_server.url, api_key="k", cache=False, **kwargs)
    with dspy.context(lm=lm):
        first = dspy.Predict("question -> answer")(question="What is 2+2?")
        second = dspy.Predict("question -> answer")(question="What is 2+2?")
    assert "2+2" in first.answer and first.answer == second.answer
    assert openai_server.calls == 2
    assert lm.history[-1]["usage"]["total_tokens"] > 0


def test_streamed_chat_arrives_in_chunks(openai_server):
    lm = dspy.LM("openai/gpt-4o-mini", api_base=openai_server.url, api_key="k", cache=False)
    listener = dspy.streaming.StreamListener(signature_field_name="answer")
    program = dspy.streamify(dspy.Predict("question -> answer"), stream_listeners=[listener])

    async def run():
        chunks, final = [], None
        async for item in program(question="Stream this answer please"):
            if isinstance(item, dspy.streaming.StreamResponse):
                chunks.append(item.chunk)
            elif isinstance(item, dspy.Prediction):
                final = item
        return chunks, final

    with dspy.context(lm=lm):
        chunks, final = asyncio.run(run())
    assert len(chunks) > 1 and "".join(chunks).strip() == final.answer


def test_embeddings_and_injected_failures(openai_server):
    embedder = dspy.Embedder("openai/text-embedding-3-small", api_base=openai_server.url, api_key="k", caching=False)
    assert embedder(["a", "b"]).shape == (2, 8)
    openai_server.fail_next(1, status=500)
    lm = dspy.LM("openai/gpt-4o-mini", api_base=openai_server.url, api_key="k", cache=False, num_retries=0)
    with pytest.raises(Exception, match="injected failure"):
        lm("hello")
    assert lm("hello")[0].startswith("Offline reply")


def test_latency_is_per_server():
    import time

    with OpenAIServer(latency=0.2) as slow:
        lm = dspy.LM("openai/gpt-4o-mini", api_base=slow.url, api_key="k", cache=False)
        started = time.perf_counter()
        lm("hi")
        assert time.perf_counter() - started >= 0.2
