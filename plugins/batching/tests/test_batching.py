"""turbo.batch / abatch through real DSPy programs on the offline LM, with both strategies."""

from __future__ import annotations

import asyncio
import itertools
import time

import dspy
import pytest

import dspy_turbo
from dspy_turbo.engines.offline import AsyncOfflineEngine, OfflineEngine, offline_lm
from dspy_turbo.plugin.batch import BatchError

STRATEGIES = ["thread", "async"]


class QA(dspy.Module):
    """A two-step program: the second request depends on the first answer."""

    def __init__(self):
        super().__init__()
        self.draft = dspy.Predict("question -> answer")
        self.check = dspy.Predict("question, answer -> verdict: bool")

    def forward(self, question):
        if question.startswith("bad"):
            raise ValueError(f"cannot answer {question!r}")
        answer = self.draft(question=question).answer
        verdict = self.check(question=question, answer=answer).verdict
        return dspy.Prediction(answer=answer, verdict=verdict)

    async def aforward(self, question):
        if question.startswith("bad"):
            raise ValueError(f"cannot answer {question!r}")
        answer = (await self.draft.acall(question=question)).answer
        verdict = (await self.check.acall(question=question, answer=answer)).verdict
        return dspy.Prediction(answer=answer, verdict=verdict)


def _config(**batching):
    return {"cache": {"tiers": [{"type": "memory"}]}, "batching": {"type": "thread", **batching}}


@pytest.fixture
def slow_lm():
    """Latency varies per request (20-60 ms), so items finish out of input order."""
    model = offline_lm("openai/gpt-4o-mini", latency=0.04, jitter=0.5)
    with dspy.context(lm=model, adapter=None):
        yield model


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_results_keep_input_order_under_concurrency(make_turbo, slow_lm, strategy):
    turbo = make_turbo(_config(max_concurrency=16))
    questions = [f"question {i}" for i in range(48)]
    results = turbo.batch(QA(), [{"question": q} for q in questions], strategy=strategy)
    assert slow_lm.engine.calls == 2 * 48
    assert all(r.answer.startswith(f"Offline answer to {q!r} (#") for q, r in zip(questions, results, strict=True))
    # Each answer is the one its own inputs give: compare with running the program alone.
    assert [r.answer for r in results[:5]] == [QA()(question=q).answer for q in questions[:5]]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_cache_first_second_run_makes_no_lm_call(make_turbo, slow_lm, strategy):
    turbo = make_turbo(_config())
    examples = [dspy.Example(question=f"q{i}", gold="x").with_inputs("question") for i in range(20)]
    first = turbo.batch(QA(), examples, strategy=strategy, item_cache=True)
    calls = slow_lm.engine.calls
    turbo.reset_stats()
    again = turbo.batch(QA(), examples, strategy=strategy, item_cache=True)
    assert slow_lm.engine.calls == calls
    assert [r.answer for r in again] == [r.answer for r in first]
    stats = turbo.stats()
    assert stats["batches"]["hits"] == 20 and stats["batches"]["executed"] == 0 and stats["batches"]["misses"] == 0
    assert stats["hits_total"] == 20  # one bulk lookup per item, no LM-level lookups


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_by_default_a_program_of_its_own_is_served_by_the_lm_level_cache(make_turbo, slow_lm, strategy):
    turbo = make_turbo(_config())
    examples = [{"question": f"q{i}"} for i in range(20)]
    first = turbo.batch(QA(), examples, strategy=strategy)
    calls = slow_lm.engine.calls
    turbo.reset_stats()
    again = turbo.batch(QA(), examples, strategy=strategy)
    assert slow_lm.engine.calls == calls  # every LM request was a hit
    assert [r.answer for r in again] == [r.answer for r in first]
    stats = turbo.stats()
    assert stats["batches"]["hits"] == 0 and stats["batches"]["executed"] == 20  # the program ran for every item
    assert stats["hits_total"] == 40


def test_a_changed_program_is_a_different_item_key(make_turbo, lm):
    turbo = make_turbo(_config())
    program = QA()
    turbo.batch(program, [{"question": "q"}], item_cache=True)
    calls = lm.engine.calls
    program.draft.signature = program.draft.signature.with_instructions("Answer in French.")
    turbo.batch(program, [{"question": "q"}], item_cache=True)
    assert lm.engine.calls > calls


def test_duplicates_in_a_batch_run_once(make_turbo, slow_lm):
    turbo = make_turbo(_config(max_concurrency=64))
    examples = [{"question": f"q{i % 32}"} for i in range(64)]
    results = turbo.batch(dspy.Predict("question -> answer"), examples)
    assert slow_lm.engine.calls == 32
    assert [r.answer for r in results[:32]] == [r.answer for r in results[32:]]
    assert results[0] is not results[32]  # each item has its own copy
    batches = turbo.stats()["batches"]
    assert batches["coalesced"] == 32 and batches["executed"] == 32 and batches["misses"] == 64
    assert batches["items"] == 64 and batches["batches"] == 1 and batches["seconds"] > 0


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_failing_item_with_return_exceptions(make_turbo, lm, strategy):
    turbo = make_turbo(_config(max_concurrency=4))
    examples = [{"question": "bad one" if i == 3 else f"q{i}"} for i in range(8)]
    results = turbo.batch(QA(), examples, strategy=strategy, return_exceptions=True)
    assert isinstance(results[3], ValueError) and "bad one" in str(results[3])
    assert all(isinstance(r, dspy.Prediction) for i, r in enumerate(results) if i != 3)
    plain = turbo.batch(QA(), examples, strategy=strategy)  # as dspy.Parallel: a failed item is None
    assert plain[3] is None and plain[2].answer == results[2].answer
    assert turbo.stats()["batches"]["errors"] == 2


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_max_errors_stops_the_batch(make_turbo, strategy):
    lm = offline_lm("openai/gpt-4o-mini", latency=0.02)
    turbo = make_turbo(_config(max_concurrency=2))
    examples = [{"question": f"bad {i}" if i % 2 else f"q{i}"} for i in range(40)]
    with pytest.raises(BatchError, match="3 failed items") as info, dspy.context(lm=lm, adapter=None):
        turbo.batch(QA(), examples, strategy=strategy, max_errors=3)
    assert isinstance(info.value.__cause__, ValueError)
    assert lm.engine.calls < 2 * 20  # stopped early: not every good item ran


def test_bad_example_is_a_per_item_error_naming_its_index(make_turbo, lm):
    turbo = make_turbo(_config())
    results = turbo.batch(dspy.Predict("question -> answer"), [{"question": "a"}, "not a mapping"], return_exceptions=True)
    assert isinstance(results[1], TypeError) and "batch item 1" in str(results[1])


def test_per_item_timeout(make_turbo):
    turbo = make_turbo(_config(max_concurrency=4))

    def program(question):
        time.sleep(0.5 if question == "slow" else 0.0)
        return dspy.Prediction(answer=question)

    started = time.perf_counter()
    results = turbo.batch(program, [{"question": "fast"}, {"question": "slow"}], timeout=0.1, return_exceptions=True)
    assert results[0].answer == "fast"
    assert isinstance(results[1], TimeoutError) and "timeout of 0.1s" in str(results[1])
    assert time.perf_counter() - started < 0.45


def test_generator_is_read_with_a_bounded_window(make_turbo, lm):
    turbo = make_turbo(_config(max_concurrency=4, window=16))
    pulled = itertools.count()

    def examples():
        for i in range(10_000):
            next(pulled)
            yield {"question": f"q{i}"}

    stream = turbo.batch_iter(dspy.Predict("question -> answer"), examples())
    first = list(itertools.islice(stream, 10))
    stream.close()
    assert len(first) == 10
    read = next(pulled)
    # What was yielded, the window of 16 (in flight or ready), one ready list of at most 16
    # in the hand-off to this thread and one chunk (4) being admitted: never the whole input.
    assert read <= 10 + 16 + 16 + 4, read


async def test_cancelling_an_async_batch_leaves_no_running_tasks(make_turbo):
    model = offline_lm("openai/gpt-4o-mini", latency=1.0)
    turbo = make_turbo(_config(max_concurrency=20))
    with dspy.context(lm=model, adapter=None):
        task = asyncio.create_task(turbo.abatch(dspy.Predict("question -> answer"),
                                                [{"question": f"q{i}"} for i in range(200)], strategy="async"))
        for _ in range(100):  # until the first 20 are waiting on the LM
            await asyncio.sleep(0.02)
            if model.engine.calls >= 20:
                break
        assert model.engine.calls == 20
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert others == []
        await asyncio.sleep(0.2)
        assert model.engine.calls == 20  # nothing started after the cancel


async def test_abatch_accepts_an_async_iterable(make_turbo, lm):
    turbo = make_turbo(_config())

    async def examples():
        for i in range(5):
            yield {"question": f"q{i}"}

    results = await turbo.abatch(dspy.Predict("question -> answer"), examples(), strategy="async")
    assert [r.answer.split(" (#")[0] for r in results] == [f"Offline answer to 'q{i}'" for i in range(5)]


class FlakyEngine(OfflineEngine):
    """Raises the queued errors first, then answers."""

    def __init__(self, errors):
        super().__init__()
        self.errors = list(errors)

    def complete(self, request):
        if self.errors:
            self.calls += 1
            raise self.errors.pop(0)
        return super().complete(request)


def _flaky_lm(errors, num_retries=3):
    engine = FlakyEngine(errors)
    return dspy.LM("openai/gpt-4o-mini", engine=engine, async_engine=AsyncOfflineEngine(engine), num_retries=num_retries)


def test_429_then_success_is_retried_after_retry_after(make_turbo):
    model = _flaky_lm([dspy.lm15.RateLimitError("slow down", status=429, retry_after=0.3)])
    turbo = make_turbo(_config(retry={"initial": 0.01}))
    seen = []
    turbo.bus.add("test", lambda e: seen.append(e) if e.kind == "retry" else None)
    started = time.perf_counter()
    with dspy.context(lm=model, adapter=None):
        (result,) = turbo.batch(dspy.Predict("question -> answer"), [{"question": "q"}])
    assert result.answer.startswith("Offline answer")
    assert model.engine.calls == 2
    assert time.perf_counter() - started >= 0.3  # Retry-After honoured, not the 10 ms backoff
    assert len(seen) == 1 and seen[0].latency >= 0.3 and "RateLimit" in seen[0].error
    assert turbo.stats()["batches"]["retries"] == 1


def test_other_errors_are_not_retried_and_retries_are_not_multiplied(make_turbo):
    bad = _flaky_lm([dspy.lm15.InvalidRequestError("bad request", status=400)])
    turbo = make_turbo(_config(retry={"initial": 0.01}))
    with dspy.context(lm=bad, adapter=None):
        (result,) = turbo.batch(dspy.Predict("question -> answer"), [{"question": "q"}], return_exceptions=True)
    assert isinstance(result, Exception) and bad.engine.calls == 1
    # Five 503s with num_retries=3: 4 attempts in all (DSPy's own retries are off inside a batch).
    down = _flaky_lm([dspy.lm15.ServerError("unavailable", status=503) for _ in range(5)], num_retries=3)
    with dspy.context(lm=down, adapter=None):
        (result,) = turbo.batch(dspy.Predict("question -> answer"), [{"question": "q2"}], return_exceptions=True)
    assert isinstance(result, Exception) and down.engine.calls == 4


@pytest.mark.requires_plugin("file")
def test_rate_limit_in_a_batch_blocks_instead_of_failing(make_turbo, lm):
    # 1200/min = 20/s with a 1 s burst: 20 at once, the next 20 over about a second.
    turbo = make_turbo(_config(max_concurrency=40, rate_limit={"requests_per_minute": 1200}))
    started = time.perf_counter()
    results = turbo.batch(dspy.Predict("question -> answer"), [{"question": f"q{i}"} for i in range(40)])
    elapsed = time.perf_counter() - started
    assert all(r is not None for r in results)
    assert elapsed >= 0.85, elapsed
    # Most of the 20 beyond the burst waited; on a loaded machine the bucket refills a few
    # tokens while the first items are still starting, so not all 20 of them.
    assert turbo.stats()["other_events"]["rate_limited"] >= 10


def test_cached_module_shares_item_keys_with_batch(make_turbo, lm):
    make_turbo(_config()).install()
    qa = dspy_turbo.CachedModule(QA(), item_cache=True)
    assert [name for name, _ in qa.named_predictors()] == ["program.draft", "program.check"]
    batch = qa.batch_forward([{"question": f"q{i}"} for i in range(4)])
    calls = lm.engine.calls
    single = qa(question="q2")
    assert lm.engine.calls == calls and single.answer == batch[2].answer
    qa(question="new")
    assert lm.engine.calls == calls + 2
    qa(question="new")
    assert lm.engine.calls == calls + 2


def test_progress_bar_shows_hits_and_errors(make_turbo, lm, capsys):
    turbo = make_turbo(_config())
    turbo.batch(dspy.Predict("question -> answer"), [{"question": "a"}])
    turbo.batch(dspy.Predict("question -> answer"), [{"question": "a"}, "bad"], progress=True, return_exceptions=True)
    err = capsys.readouterr().err
    assert "2/2" in err and "hits=1" in err and "errors=1" in err
    turbo.batch(dspy.Predict("question -> answer"), [{"question": "b"}])  # not a TTY: no bar by default
    assert capsys.readouterr().err == ""


def test_config_errors_name_the_yaml_path():
    with pytest.raises(dspy_turbo.ConfigError) as info:
        dspy_turbo.load({"batching": {"type": "thread", "max_concurrency": 0, "rate_limit": {"requests_per_minit": 5}}})
    text = str(info.value)
    assert "batching.max_concurrency" in text and "batching.rate_limit.requests_per_minit" in text
    with pytest.raises(dspy_turbo.ConfigError, match="batching.type.*'thred'.*thread"):
        dspy_turbo.load({"batching": {"type": "thred"}})


def test_unknown_strategy_per_call(make_turbo, lm):
    turbo = make_turbo(_config())
    with pytest.raises(ValueError, match="unknown batch strategy 'fibers'.*available: async, (.*, )?thread"):
        turbo.batch(dspy.Predict("question -> answer"), [{"question": "a"}], strategy="fibers")


def test_an_item_hit_reports_the_tokens_and_dollars_it_saved(make_turbo, lm):
    turbo = make_turbo(_config())
    examples = [{"question": f"q{i}"} for i in range(3)]
    turbo.batch(QA(), examples, item_cache=True)
    spent = turbo.stats()
    assert spent["tokens"]["spent"] > 0 and spent["dollars"]["spent"] > 0
    turbo.reset_stats()
    turbo.batch(QA(), examples, item_cache=True)
    saved = turbo.stats()
    assert saved["lm_calls"] == 0
    assert saved["tokens"]["saved"] == spent["tokens"]["spent"]
    assert saved["dollars"]["saved"] == pytest.approx(spent["dollars"]["spent"])


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_an_item_raising_cancelled_error_fails_alone(make_turbo, lm, strategy):
    import asyncio

    class CancelOne(dspy.Module):
        def forward(self, question):
            if question == "cancel me":
                raise asyncio.CancelledError()  # e.g. an inner task the program cancelled
            return f"ok {question}"

        async def aforward(self, question):
            return self.forward(question)

    turbo = make_turbo(_config(max_concurrency=2))
    results = turbo.batch(CancelOne(), [{"question": "cancel me"}, {"question": "fine"}], strategy=strategy,
                          return_exceptions=True, item_cache=False)
    assert isinstance(results[0], asyncio.CancelledError) and results[1] == "ok fine"


def test_n_candidates_take_n_requests_from_the_rate_limit(make_turbo, lm, monkeypatch):
    from dspy_turbo.coordination import coordinator as coordination

    taken = []
    original = coordination.LocalCoordinator.take

    def take(self, bucket, amount, rate, capacity):
        if bucket.endswith(":requests"):
            taken.append(amount)
        return original(self, bucket, amount, rate, capacity)

    monkeypatch.setattr(coordination.LocalCoordinator, "take", take)
    turbo = make_turbo(_config())
    turbo.batch(dspy.Predict("question -> answer", n=3), [{"question": "hello"}], item_cache=False,
                rate_limit={"requests_per_minute": 6000})
    assert taken == [3.0]  # three candidates are three requests to the provider
