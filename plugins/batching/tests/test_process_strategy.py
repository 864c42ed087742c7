"""The ``process`` strategy: real DSPy programs in worker processes against the loopback HTTP LM,
side by side with ``dspy.Parallel``."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import types
import uuid

import dspy
import pytest

import dspy_turbo
from dspy_turbo.engines.openai_server import OpenAIServer
from dspy_turbo.plugin.batch import BatchError
from dspy_turbo.plugin.wire import RemoteItemError
from dspy_turbo.testing import BatchStrategySuite
from dspy_turbo.testing.processes import still_running
from dspy_turbo_batching.process import ProcessStrategy

pytestmark = pytest.mark.slow


class Answer(dspy.Module):
    """A program of the user's own (not DSPy's code alone: no item cache by default), so every
    item runs in a worker; it says which process ran it."""

    def __init__(self):
        super().__init__()
        self.predict = dspy.Predict("question -> answer")

    def forward(self, question, item=None):
        prediction = self.predict(question=question)
        return dspy.Prediction(answer=prediction.answer, worker=os.getpid())


class OddError(Exception):
    pass


class Picky(dspy.Module):
    def forward(self, question):
        if question.startswith("bad"):
            raise ValueError(f"cannot answer {question!r}")
        if question.startswith("odd"):
            raise OddError("an exception type of the program's own")
        return dspy.Prediction(answer=question.upper(), worker=os.getpid())


class Locked(dspy.Module):
    """State that cannot be pickled: the program cannot be shipped to a worker process."""

    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()
        self.predict = dspy.Predict("question -> answer")

    def forward(self, question):
        with self.lock:
            return self.predict(question=question)


@pytest.fixture(scope="module")
def lm_server():
    with OpenAIServer(latency=0.05) as server:
        yield server


@pytest.fixture
def http_lm(lm_server):
    lm_server.reset()
    lm_server.latency = 0.05
    model = dspy.LM("openai/gpt-4o-mini", api_base=lm_server.url, api_key="sk-test-not-a-secret", cache=True)
    with dspy.context(lm=model, adapter=None):
        yield model


def _config(namespace: str | None = None, **batching) -> dict:
    return {"namespace": namespace or f"proc{uuid.uuid4().hex[:10]}", "cache": {"tiers": [{"type": "memory"}]},
            "batching": {"type": "process", "processes": 2, "max_concurrency": 8, "progress": False, **batching}}


def _questions(n: int) -> list[dict]:
    tag = uuid.uuid4().hex[:8]  # questions no earlier run (or DSPy's own disk cache) has seen
    return [{"question": f"q{tag} number {i}?"} for i in range(n)]


def _pids(turbo) -> set[int]:
    from dspy_turbo_batching import processes

    return {pid for pool in processes.pools_of(turbo) for pid in pool.pids}


def _gone(pids: set[int]) -> None:
    assert pids and not still_running(pids)


class TestProcessStrategyConformance(BatchStrategySuite):
    """The SDK's suite: its LM calls are made in the workers, so the LM is the HTTP server,
    which counts every call whatever process makes it."""

    @pytest.fixture
    def strategy(self):
        return ProcessStrategy

    @pytest.fixture
    def batch_lm(self, lm_server):
        lm_server.reset()
        lm_server.latency = 0.03
        model = dspy.LM("openai/gpt-4o-mini", api_base=lm_server.url, api_key="sk-test-not-a-secret", cache=True)
        with dspy.context(lm=model, adapter=None):
            yield types.SimpleNamespace(engine=lm_server)


def test_same_answers_in_the_same_order_as_dspy_parallel(lm_server, http_lm):
    program = Answer()
    examples = _questions(24)
    parallel = dspy.Parallel(num_threads=8)([(program, dspy.Example(**e).with_inputs("question")) for e in examples])
    lm_server.reset()
    with dspy_turbo.load(_config()) as turbo:
        results = turbo.batch(program, examples)
        assert [r.answer for r in results] == [p.answer for p in parallel]
        assert all(isinstance(r, dspy.Prediction) for r in results)
        workers = {r.worker for r in results}
        assert len(workers) == 2 and os.getpid() not in workers and workers == _pids(turbo)
        assert lm_server.calls == 24
        # identical inputs go to one process: its single-flight and memory tier serve the copies
        again = turbo.batch(program, examples[:6] * 3)
        assert [r.answer for r in again] == [p.answer for p in parallel[:6]] * 3
        assert lm_server.calls == 24


@pytest.fixture(scope="module")
def picky_turbo():
    """One Turbo, so one pool of workers, for the tests that need no LM."""
    with dspy_turbo.load(_config()) as turbo:
        yield turbo


def test_errors_are_per_item_in_order_and_the_workers_are_reused(picky_turbo):
    examples = [{"question": q} for q in ["one", "bad two", "three", "odd four", "five"]]
    results = picky_turbo.batch(Picky(), examples, return_exceptions=True)
    pids = _pids(picky_turbo)
    quiet = picky_turbo.batch(Picky(), examples, max_errors=10)
    assert [r.answer for r in results[0::2]] == ["ONE", "THREE", "FIVE"]
    assert isinstance(results[1], ValueError) and "cannot answer 'bad two'" in str(results[1])
    assert "Traceback" in results[1].remote_traceback
    assert isinstance(results[3], RemoteItemError) and results[3].remote_type.endswith("OddError")
    assert quiet[1] is None and quiet[3] is None and quiet[4].answer == "FIVE"
    # the second batch ran in the first one's processes: they are started once per Turbo
    assert len(pids) == 2 and _pids(picky_turbo) == pids
    assert {r.worker for r in quiet if r is not None} <= pids


def test_progress_counts_every_item(picky_turbo, capsys):
    results = picky_turbo.batch(Picky(), [{"question": f"item {i}"} for i in range(30)], progress=True)
    assert [r.answer for r in results] == [f"ITEM {i}" for i in range(30)]
    err = capsys.readouterr().err
    assert "30/30" in err and "errors=0" in err


def test_inputs_that_cannot_cross_fail_their_item_only(picky_turbo):
    results = picky_turbo.batch(Picky(), [{"question": "fine"}, {"question": object()}], return_exceptions=True)
    assert results[0].answer == "FINE"
    assert isinstance(results[1], TypeError)
    assert "input field 'question' cannot be sent to a worker process" in str(results[1])


def test_a_program_that_cannot_be_shipped_fails_with_a_clear_error_not_a_hang(picky_turbo, http_lm):
    started = time.monotonic()
    results = picky_turbo.batch(Locked(), _questions(4), return_exceptions=True)
    assert all(isinstance(r, TypeError) for r in results)
    assert "the program cannot be sent to the worker processes" in str(results[0])
    assert "'thread' strategy" in str(results[0])
    with pytest.raises(BatchError) as caught:
        picky_turbo.batch(Locked(), _questions(20))
    assert "cannot be sent to the worker processes" in str(caught.value)
    assert time.monotonic() - started < 30


@pytest.mark.requires_plugin("file")
def test_a_second_turbo_is_served_from_the_shared_file_tier_with_no_lm_call(lm_server, http_lm, tmp_path):
    config = _config()
    config["cache"]["tiers"].append({"type": "file", "directory": str(tmp_path / "shared")})
    examples = _questions(12)
    with dspy_turbo.load(config) as turbo:
        first = turbo.batch(Answer(), examples)
        workers = _pids(turbo)
    assert lm_server.calls == 12
    _gone(workers)  # turbo.close() stopped its processes
    with dspy_turbo.load(config) as turbo:  # new workers, empty memory tiers, the same file tier
        again = turbo.batch(Answer(), examples)
        assert not workers & _pids(turbo)
    assert [r.answer for r in again] == [r.answer for r in first]
    assert lm_server.calls == 12


def test_stopping_early_leaves_no_worker_process_alive(lm_server, http_lm):
    lm_server.latency = 0.5
    with dspy_turbo.load(_config(max_concurrency=4)) as turbo:
        results = turbo.batch_iter(Answer(), _questions(40))
        next(results)
        pids = _pids(turbo)
        results.close()  # the consumer stops: the rest of the batch is cancelled
        calls = lm_server.calls
        _gone(pids)  # stopped with the batch, before turbo.close()
        assert calls < 40
        # the next batch starts new workers
        assert turbo.batch(Picky(), [{"question": "after"}])[0].answer == "AFTER"
        assert not pids & _pids(turbo)


def test_bad_options_are_refused_with_their_name():
    with pytest.raises(Exception, match="processes"):
        dspy_turbo.load(_config(processes=0))
    with pytest.raises(Exception, match="start_method"):
        dspy_turbo.load(_config(start_method="threads"))


def test_two_batches_at_once_share_the_processes(picky_turbo):
    async def both():
        return await asyncio.gather(*(picky_turbo.abatch(Picky(), [{"question": f"{side} {i}"} for i in range(12)])
                                      for side in ("left", "right")))

    picky_turbo.batch(Picky(), [{"question": "start"}])
    pids = _pids(picky_turbo)
    left, right = asyncio.run(both())
    assert [r.answer for r in left] == [f"LEFT {i}" for i in range(12)]
    assert [r.answer for r in right] == [f"RIGHT {i}" for i in range(12)]
    assert {r.worker for r in left + right} <= pids
