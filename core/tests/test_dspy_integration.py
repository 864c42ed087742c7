"""Real DSPy programs through an installed Turbo, with the offline engine."""

import asyncio
import threading
import time

import dspy
import pytest

import dspy_turbo
from dspy_turbo.engines.offline import offline_lm


class TwoStep(dspy.Module):
    def __init__(self):
        super().__init__()
        self.rewrite = dspy.Predict("question -> search_query")
        self.answer = dspy.ChainOfThought("question, search_query -> answer")

    def forward(self, question):
        query = self.rewrite(question=question).search_query
        return self.answer(question=question, search_query=query)


@pytest.mark.parametrize("make_program", [
    lambda: dspy.Predict("question -> answer"),
    lambda: dspy.ChainOfThought("question -> answer"),
    TwoStep,
], ids=["Predict", "ChainOfThought", "two-step Module"])
def test_first_call_misses_second_hits_without_lm(turbo, lm, make_program):
    program = make_program()
    first = program(question="What is the capital of France?")
    calls = lm.engine.calls
    assert calls >= 1
    second = program(question="What is the capital of France?")
    assert lm.engine.calls == calls, "the second call must be served from the cache"
    assert second.answer == first.answer
    stats = turbo.stats()
    assert stats["lm_calls"] == calls
    assert stats["hits"]["memory"] >= calls
    assert stats["tokens"]["saved"] > 0 and stats["dollars"]["saved"] > 0


def test_cache_false_bypasses(make_turbo):
    lm = offline_lm(cache=False)
    make_turbo().install()
    with dspy.context(lm=lm):
        p = dspy.Predict("question -> answer")
        p(question="q")
        p(question="q")
    assert lm.engine.calls == 2


def test_per_call_cache_false_bypasses(turbo, lm):
    lm("hello", cache=False)
    lm("hello", cache=False)
    assert lm.engine.calls == 2
    assert turbo.stats()["hits_total"] == 0


def test_rollout_id_separates_entries_like_dspy(turbo, lm):
    p = dspy.Predict("question -> answer")
    p(question="q", config={"rollout_id": 1, "temperature": 1.0})
    p(question="q", config={"rollout_id": 2, "temperature": 1.0})
    assert lm.engine.calls == 2
    p(question="q", config={"rollout_id": 1, "temperature": 1.0})
    assert lm.engine.calls == 2, "the same rollout_id is cached again"


def test_sync_then_async_share_one_entry(turbo, lm):
    p = dspy.Predict("question -> answer")
    sync = p(question="shared?")
    out = asyncio.run(p.acall(question="shared?"))
    assert lm.engine.calls == 1
    assert out.answer == sync.answer


def test_async_then_sync_share_one_entry(turbo, lm):
    p = dspy.Predict("question -> answer")
    first = asyncio.run(p.acall(question="async first"))
    assert p(question="async first").answer == first.answer
    assert lm.engine.calls == 1


def test_sixteen_threads_same_question_make_one_lm_call(make_turbo, run_threads):
    lm = offline_lm(latency=0.3)
    turbo = make_turbo().install()
    p = dspy.Predict("question -> answer")
    answers, barrier = [], threading.Barrier(16)

    def ask():
        with dspy.context(lm=lm):
            barrier.wait()
            answers.append(p(question="same question").answer)

    run_threads(ask, 16)
    assert lm.engine.calls == 1
    assert len(set(answers)) == 1 and len(answers) == 16
    stats = turbo.stats()
    assert stats["coalesced"] == 15
    # every request counts once: 16 misses at lookup, of which 1 LM call and 15 coalesced
    assert stats["misses"] == 16 and stats["hits_total"] == 0 and stats["lm_calls"] == 1
    assert stats["tokens"]["saved"] == 15 * stats["tokens"]["spent"]


def test_asyncio_tasks_same_question_make_one_lm_call(make_turbo):
    lm = offline_lm(latency=0.3)
    make_turbo().install()
    p = dspy.Predict("question -> answer")

    async def main():
        with dspy.context(lm=lm):
            return await asyncio.gather(*[p.acall(question="same async") for _ in range(10)])

    results = asyncio.run(main())
    assert lm.engine.calls == 1
    assert len({r.answer for r in results}) == 1


def test_failed_leader_error_reaches_waiters_and_next_call_retries(make_turbo, run_threads):
    lm = offline_lm(latency=0.3, num_retries=0)
    make_turbo().install()
    lm.engine.fail_next = 1
    errors, barrier = [], threading.Barrier(4)

    def ask():
        with dspy.context(lm=lm):
            barrier.wait()
            try:
                lm("will fail")
            except Exception as exc:
                errors.append(exc)

    run_threads(ask, 4)
    assert lm.engine.calls == 1
    assert len(errors) == 4 and all("injected failure" in str(e) for e in errors)
    assert lm("will fail")  # the next call tries again and succeeds
    assert lm.engine.calls == 2


def test_expired_entry_misses(make_turbo, lm):
    make_turbo({"cache": {"ttl": "1s", "tiers": [{"type": "memory"}]}}).install()
    lm("expiring")
    lm("expiring")
    assert lm.engine.calls == 1
    time.sleep(1.2)
    lm("expiring")
    assert lm.engine.calls == 2


def test_a_tier_that_raises_does_not_break_the_program(make_turbo, lm):
    class Broken(dspy_turbo.CacheBackend):
        name = "broken"

        def get(self, key):
            raise ConnectionError("tier is down")

        def set(self, key, entry, ttl=None):
            raise ConnectionError("tier is down")

    class Plugin:
        @dspy_turbo.hookimpl
        def dspy_turbo_cache_backends(self):
            return [Broken]

    turbo = make_turbo({"cache": {"tiers": [{"type": "broken"}, {"type": "memory"}]}}, plugins=[Plugin()]).install()
    p = dspy.Predict("question -> answer")
    first = p(question="still works?")
    assert p(question="still works?").answer == first.answer
    assert lm.engine.calls == 1, "the memory tier behind the broken one still serves"
    stats = turbo.stats()
    assert stats["errors"]["broken"] >= 1
    assert stats["tiers"]["broken"]["breaker"] == "open"


def test_truncated_responses_are_not_stored(make_turbo):
    lm = offline_lm(finish_reason="length")
    turbo = make_turbo().install()
    with dspy.context(lm=lm):
        lm("cut off")
        lm("cut off")
    assert lm.engine.calls == 2
    assert turbo.stats()["skipped_stores"] == {"truncated": 2}


def test_uninstall_restores_dspys_previous_cache(make_turbo, lm):
    previous = dspy.cache
    turbo = make_turbo().install()
    assert dspy.cache is not previous
    turbo.uninstall()
    assert dspy.cache is previous
    import dspy.clients.execution as execution

    assert not hasattr(execution.execute, "__wrapped__")


def test_context_manager_installs_and_closes(lm):
    previous = dspy.cache
    with dspy_turbo.load({"cache": {"tiers": [{"type": "memory"}]}}) as turbo:
        assert dspy.cache.turbo is turbo
        lm("inside")
        lm("inside")
    assert dspy.cache is previous
    assert turbo.closed and lm.engine.calls == 1


def test_json_adapter_responses_are_cached(turbo, lm):
    with dspy.context(adapter=dspy.JSONAdapter()):
        p = dspy.Predict("question -> answer: int")
        first = p(question="how many?")
        assert isinstance(first.answer, int)
        assert p(question="how many?").answer == first.answer
    assert lm.engine.calls == 1


def test_streaming_call_is_cached(turbo, lm):
    program = dspy.streamify(dspy.Predict("question -> answer"))

    async def consume():
        final = None
        async for item in program(question="stream me"):
            if isinstance(item, dspy.Prediction):
                final = item
        return final

    first = asyncio.run(consume())
    second = asyncio.run(consume())
    assert first.answer == second.answer
    assert lm.engine.calls == 1


def test_embedder_goes_through_turbo(turbo):
    calls = []

    def embed(texts):
        calls.append(list(texts))
        return [[float(len(t)), 1.0] for t in texts]

    embedder = dspy.Embedder(embed, caching=True)
    first = embedder(["a", "bb"])
    second = embedder(["a", "bb"])
    assert len(calls) == 1
    assert [list(map(float, row)) for row in first] == [list(map(float, row)) for row in second]
    assert turbo.stats()["hits_total"] >= 1


def test_mutating_a_result_does_not_change_the_cache(turbo):
    @dspy_turbo.cached
    def retrieve(query):
        return {"passages": ["p1", "p2"]}

    out = retrieve("q")
    out["passages"].append("mutated")
    assert retrieve("q") == {"passages": ["p1", "p2"]}


def test_cached_decorator_sync_and_async(turbo):
    calls = []

    @dspy_turbo.cached(ttl="1h")
    def search(query, k=3):
        calls.append(query)
        return [f"{query}-{i}" for i in range(k)]

    @dspy_turbo.cached
    async def asearch(query):
        calls.append(("async", query))
        await asyncio.sleep(0.01)
        return query.upper()

    assert search("q") == search("q", k=3) == ["q-0", "q-1", "q-2"]
    assert search("q", k=2) == ["q-0", "q-1"]
    assert calls == ["q", "q"]
    assert asyncio.run(asearch("x")) == asyncio.run(asearch("x")) == "X"
    assert calls.count(("async", "x")) == 1


def test_cached_decorator_without_installed_turbo_just_runs():
    calls = []

    @dspy_turbo.cached
    def f(x):
        calls.append(x)
        return x

    assert f(1) == f(1) == 1
    assert calls == [1, 1]


def test_unencodable_value_is_not_cached_but_returned(turbo):
    class Opaque:
        pass

    @dspy_turbo.cached
    def make():
        return Opaque()

    assert isinstance(make(), Opaque)
    assert isinstance(make(), Opaque)
    assert turbo.stats()["skipped_stores"] == {"unencodable": 2}


def test_cached_decorator_coalesces_concurrent_calls_and_counts_each_once(turbo, run_threads):
    calls = []

    @dspy_turbo.cached
    def slow(query):
        calls.append(query)
        time.sleep(0.3)
        return {"result": query}

    barrier = threading.Barrier(8)
    results = []

    def ask():
        barrier.wait()
        results.append(slow("same"))

    run_threads(ask, 8)
    assert calls == ["same"] and results == [{"result": "same"}] * 8
    stats = turbo.stats()
    assert stats["coalesced"] == 7 and stats["misses"] == 8 and stats["hits_total"] == 0


def test_waiters_of_an_unstored_call_do_not_count_its_usage_again(make_turbo):
    """When the leader's answer is not stored (here a veto), waiters get their own copy of
    it, marked as a hit: DSPy's usage tracking sees the one LM call once."""
    import threading

    class Veto:
        @dspy_turbo.hookimpl
        def dspy_turbo_should_store(self, request, value, entry, reason, turbo):
            return False

    make_turbo(plugins=[Veto()]).install()
    model = offline_lm("openai/gpt-4o-mini", latency=0.3)
    predict = dspy.Predict("question -> answer")
    tracked, answers = [], []

    def ask():
        with dspy.context(lm=model), dspy.track_usage() as tracker:
            answers.append(predict(question="same").answer)
        tracked.append(tracker.get_total_tokens().get("openai/gpt-4o-mini", {}).get("total_tokens") or 0)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert model.engine.calls == 1 and len(set(answers)) == 1
    assert sorted(tracked)[:3] == [0, 0, 0] and sorted(tracked)[3] > 0


@pytest.mark.parametrize("door", ["sync", "async"])
def test_a_miss_keys_its_request_once_and_is_stored_under_that_key(turbo, lm, monkeypatch, door):
    """DSPy builds the request again for its own cache read and write inside one LM call;
    those reuse the key the call was looked up under, and a later call hits it."""
    keyed = []
    original = type(turbo.keys).key

    def spy(self, request, ignored=None):
        key = original(self, request, ignored)
        keyed.append(key)
        return key

    monkeypatch.setattr(type(turbo.keys), "key", spy)
    program = dspy.Predict("question -> answer")

    def ask():
        if door == "sync":
            return program(question="how often is a request keyed?")
        return asyncio.run(program.acall(question="how often is a request keyed?"))

    first = ask()
    assert lm.engine.calls == 1
    assert len(keyed) == 1, "one miss: looked up, single-flighted, re-checked and stored under one key computation"
    assert turbo.cache.get(keyed[0], count=False) is not None
    assert ask().answer == first.answer and lm.engine.calls == 1
