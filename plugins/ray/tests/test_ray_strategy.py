"""The ``ray`` strategy on a local Ray cluster, against the HTTP LM server and a private Redis."""

from __future__ import annotations

import os
import uuid

import dspy
import pytest

import dspy_turbo
from dspy_turbo.testing.processes import still_running
from dspy_turbo_ray import RemoteItemError

# A shared cache across the workers is the redis tier; dspy.Parallel and the item cache beside it.
pytestmark = [pytest.mark.slow, pytest.mark.requires_plugin("redis", "file", "batching")]


class Answer(dspy.Module):
    """A program of the user's own (not DSPy's code alone): no item cache by default, so
    every item runs in a worker and duplicates meet in the workers' LM-level cache."""

    def __init__(self):
        super().__init__()
        self.predict = dspy.Predict("question -> answer")

    def forward(self, question, item=None):
        prediction = self.predict(question=question)
        return dspy.Prediction(answer=prediction.answer, worker=os.getpid())


class Picky(dspy.Module):
    def forward(self, question):
        if question.startswith("bad"):
            raise ValueError(f"cannot answer {question!r}")
        if question.startswith("odd"):
            raise OddError("an exception type of the program's own")
        return dspy.Prediction(answer=question.upper(), worker=os.getpid())


class OddError(Exception):
    pass


def _config(redis_url: str, namespace: str) -> dict:
    return {"namespace": namespace,
            "cache": {"tiers": [{"type": "memory"}, {"type": "redis", "url": redis_url}]},
            "batching": {"type": "ray", "max_concurrency": 8, "ray": {"workers": 2, "num_cpus": 0.25}}}


@pytest.fixture
def http_lm(lm_server):
    lm_server.reset()
    model = dspy.LM("openai/gpt-4o-mini", api_base=lm_server.url, api_key="sk-test-not-a-secret", cache=True)
    with dspy.context(lm=model, adapter=None):
        yield model


def _questions(n_distinct: int, copies: int) -> list[dict]:
    tag = uuid.uuid4().hex[:8]  # questions no earlier run (or DSPy's own disk cache) has seen
    return [{"question": f"q{tag} number {i}?", "item": c} for c in range(copies) for i in range(n_distinct)]


def test_same_answers_as_dspy_parallel_one_lm_call_per_distinct_request_then_from_cache(
        ray_cluster, private_redis, lm_server, http_lm):
    program = Answer()
    examples = _questions(6, 3)  # 18 items, 6 distinct LM requests, duplicates spread over both workers
    parallel = dspy.Parallel(num_threads=8)([(program, dspy.Example(**e).with_inputs("question", "item"))
                                            for e in examples])
    lm_server.reset()

    config = _config(private_redis, f"ray{uuid.uuid4().hex[:10]}")
    with dspy_turbo.load(config) as turbo:
        first = turbo.batch(program, examples)
        assert [p.answer for p in first] == [p.answer for p in parallel]
        assert all(p.answer for p in first)
        # distributed single-flight: workers in two processes ask once per distinct request
        assert lm_server.calls == 6
        workers = {p.worker for p in first}
        assert len(workers) == 2 and os.getpid() not in workers
    _gone(workers)  # turbo.close() stopped its workers

    with dspy_turbo.load(config) as turbo:  # a new driver: new workers, the same Redis tier
        again = turbo.batch(program, examples)
        assert [p.answer for p in again] == [p.answer for p in parallel]
        assert lm_server.calls == 6
        assert not workers & {p.worker for p in again}


def test_a_dspy_program_is_served_from_the_item_cache_the_second_time(ray_cluster, private_redis, lm_server, http_lm):
    program = dspy.Predict("question -> answer")  # DSPy's own code: the batch caches each item's result
    examples = [{"question": e["question"]} for e in _questions(5, 1)]
    parallel = dspy.Parallel(num_threads=4)([(program, dspy.Example(**e).with_inputs("question")) for e in examples])
    lm_server.reset()
    events = []

    class Events:
        @dspy_turbo.hookimpl
        def dspy_turbo_metric_event(self, event):
            if event.kind == "batch":
                events.append(event.extra)

    with dspy_turbo.load(_config(private_redis, f"ray{uuid.uuid4().hex[:10]}"), plugins=[Events()]) as turbo:
        first = turbo.batch(program, examples)
        assert [p.answer for p in first] == [p.answer for p in parallel]
        assert lm_server.calls == 5
        again = turbo.batch(program, examples)
        assert [p.answer for p in again] == [p.answer for p in parallel]
        assert lm_server.calls == 5
        turbo.bus.flush(5)
    assert [e["executed"] for e in events] == [5, 0] and events[1]["hits"] == 5


@pytest.fixture(scope="module")
def picky_turbo(ray_cluster, private_redis):
    """One Turbo (so one worker pool) for the tests that need no LM."""
    with dspy_turbo.load(_config(private_redis, f"ray{uuid.uuid4().hex[:10]}")) as turbo:
        yield turbo


def test_errors_are_per_item_and_in_order(picky_turbo):
    examples = [{"question": q} for q in ["one", "bad two", "three", "odd four", "five"]]
    turbo = picky_turbo
    results = turbo.batch(Picky(), examples, return_exceptions=True)
    quiet = turbo.batch(Picky(), examples, max_errors=10)
    assert [r.answer for r in results[0::2]] == ["ONE", "THREE", "FIVE"]
    assert isinstance(results[1], ValueError) and "cannot answer 'bad two'" in str(results[1])
    assert "Traceback" in results[1].remote_traceback
    assert isinstance(results[3], RemoteItemError) and results[3].remote_type.endswith("OddError")
    assert quiet[1] is None and quiet[3] is None and quiet[4].answer == "FIVE"
    # the second batch ran in the first one's workers (a pool is started once per Turbo)
    assert {r.worker for r in quiet if r is not None} <= {r.worker for r in results[0::2]}


def test_stopping_early_leaves_no_worker_running(ray_cluster, private_redis, lm_server, http_lm):
    lm_server.latency = 0.5
    try:
        with dspy_turbo.load(_config(private_redis, f"ray{uuid.uuid4().hex[:10]}")) as turbo:
            results = turbo.batch_iter(Answer(), _questions(40, 1), max_concurrency=4)
            pids = {next(results).worker}
            results.close()  # the consumer stops: the rest of the batch is cancelled
            calls = lm_server.calls
            _gone(pids)  # stopped with the batch, before turbo.close()
    finally:
        lm_server.latency = 0.05
    assert calls < 40


def _gone(pids: set[int]) -> None:
    assert not still_running(pids)


def test_reads_the_input_a_window_at_a_time(picky_turbo):
    read = []

    def examples():
        for i in range(2000):
            read.append(i)
            yield {"question": f"item {i}"}

    results = picky_turbo.batch_iter(Picky(), examples(), window=64)
    first = next(results)
    read_at_first = len(read)
    rest = list(results)
    assert first.answer == "ITEM 0" and [r.answer for r in rest[:2]] == ["ITEM 1", "ITEM 2"] and len(rest) == 1999
    assert read_at_first <= 64 + 16


def test_inputs_that_cannot_cross_fail_their_item_only(picky_turbo):
    examples = [{"question": "fine"}, {"question": object()}]
    results = picky_turbo.batch(Picky(), examples, return_exceptions=True, item_cache=False)
    assert results[0].answer == "FINE"
    assert isinstance(results[1], TypeError) and "input field 'question' cannot be sent to a Ray worker" in str(results[1])


def test_a_batch_with_more_concurrency_replaces_an_idle_pool_that_fills_the_cluster(ray_cluster, private_redis):
    """The first pool takes every CPU the cluster has free; a later batch asking more items
    per worker needs workers of a bigger concurrency, which can only start once the idle
    first pool is gone. Smaller batches then reuse the bigger pool."""
    free = ray_cluster.available_resources().get("CPU", 0)
    config = _config(private_redis, f"ray{uuid.uuid4().hex[:10]}")
    config["batching"]["ray"] = {"workers": 2, "num_cpus": free / 2, "start_timeout": 60}
    examples = [{"question": f"item {i}"} for i in range(16)]
    with dspy_turbo.load(config) as turbo:
        small = turbo.batch(Picky(), examples, max_concurrency=2, item_cache=False)
        large = turbo.batch(Picky(), examples, max_concurrency=8, item_cache=False)
        again = turbo.batch(Picky(), examples, max_concurrency=2, item_cache=False)
    expected = [f"ITEM {i}" for i in range(16)]
    assert [r.answer for r in small] == [r.answer for r in large] == [r.answer for r in again] == expected
    first, bigger = {r.worker for r in small}, {r.worker for r in large}
    assert not first & bigger  # new workers, the first pool's are gone
    _gone(first)
    assert {r.worker for r in again} <= bigger  # the bigger pool serves the smaller batch


def test_a_per_item_timeout_does_not_count_the_pool_starting(ray_cluster, private_redis):
    """The first batch of a Turbo starts its workers (seconds: a process importing DSPy and
    building a Turbo); an item's ``timeout`` counts its own running time only."""
    examples = [{"question": f"item {i}"} for i in range(6)]
    with dspy_turbo.load(_config(private_redis, f"ray{uuid.uuid4().hex[:10]}")) as turbo:
        results = turbo.batch(Picky(), examples, timeout=1.0, return_exceptions=True, item_cache=False)
    assert [getattr(r, "answer", r) for r in results] == [f"ITEM {i}" for i in range(6)]
