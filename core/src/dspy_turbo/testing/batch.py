"""Conformance suite of batch strategies (``dspy_turbo.plugin.batch``).

    import pytest
    from dspy_turbo.testing import BatchStrategySuite

    class TestMyStrategy(BatchStrategySuite):
        @pytest.fixture
        def strategy(self):
            return MyStrategy          # the component class

The suite runs real DSPy programs (``dspy.Predict`` on the offline LM) through
``turbo.batch`` with the strategy, in a Turbo with one memory tier; a strategy that no
installed plugin registers is registered for the test. It also drives the strategy's
:class:`~dspy_turbo.plugin.batch.Runner` directly, as the batch does. Every program the
suite runs has both ``forward`` and ``aforward``, so thread- and loop-based strategies are
tested alike.

A strategy that runs items in other processes passes the same tests: the probe counts
across processes and the stand-in items' program is a module-level function, so both can
be shipped. Its suite overrides ``batch_lm`` with an LM whose calls are counted wherever
they are made (``batch_lm.engine.calls``), such as one against
``dspy_turbo.openai_server`` (dspy-turbo-batching's ``process`` strategy does).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import threading
import time
import uuid
import weakref
from typing import Any

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

import pytest

from ..plugin.batch import BatchOptions, BatchStrategy, Item, Runner


class _Probe:
    """Counts the items running at once (threads, tasks or processes alike).

    The counts live in a small file, updated under an exclusive ``flock``: a strategy that
    runs items in other processes ships the program, and this probe with it (pickled as the
    file's path), so the counts are the same wherever the items run. Where ``fcntl`` is
    missing (Windows) they live in this process only.
    """

    def __init__(self):
        fd, self.path = tempfile.mkstemp(prefix="dspy-turbo-probe-")
        os.write(fd, b"0 0 0")
        os.close(fd)
        weakref.finalize(self, _unlink, self.path)
        self._lock = threading.Lock() if fcntl is None else None

    def __getstate__(self):
        if fcntl is None:
            raise TypeError("this platform has no fcntl: the probe counts in its own process only")
        return {"path": self.path}

    def __setstate__(self, state):
        self.path, self._lock = state["path"], None  # a copy in another process: the original removes the file

    def _update(self, change: int) -> None:
        with self._locked() as f:
            active, peak, started = (int(x) for x in f.read().split())
            active += change
            if change > 0:
                started += 1
                peak = max(peak, active)
            f.seek(0)
            f.truncate()
            f.write(f"{active} {peak} {started}".encode())
            f.flush()  # before the lock is released

    @contextlib.contextmanager
    def _locked(self):
        with open(self.path, "r+b") as f:
            if self._lock is not None:
                with self._lock:
                    yield f
                return
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield f
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _counts(self) -> list[int]:
        with self._locked() as f:
            return [int(x) for x in f.read().split()]

    @property
    def active(self) -> int:
        return self._counts()[0]

    @property
    def peak(self) -> int:
        return self._counts()[1]

    @property
    def started(self) -> int:
        return self._counts()[2]

    def enter(self) -> None:
        self._update(+1)

    def leave(self) -> None:
        self._update(-1)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _program(probe: _Probe):
    import dspy

    class Ask(dspy.Module):
        """One real LM call per item; ``fail...`` raises, ``slow...`` takes a second first."""

        def __init__(self):
            super().__init__()
            self.predict = dspy.Predict("question -> answer")

        def forward(self, question):
            probe.enter()
            try:
                if question.startswith("fail"):
                    raise ValueError(f"cannot answer {question!r}")
                if question.startswith("slow"):
                    time.sleep(1.0)
                return self.predict(question=question)
            finally:
                probe.leave()

        async def aforward(self, question):
            probe.enter()
            try:
                if question.startswith("fail"):
                    raise ValueError(f"cannot answer {question!r}")
                if question.startswith("slow"):
                    await asyncio.sleep(1.0)
                return await self.predict.acall(question=question)
            finally:
                probe.leave()

    return Ask()


class _Registers:
    def __init__(self, cls):
        self.cls = cls

    def dspy_turbo_batch_strategies(self):
        return [self.cls]


def _double(n: int) -> int:
    """The stand-in items' program (a module-level function: a strategy may ship it to another process)."""
    return n * 2


class _Item:
    """A stand-in item for driving a runner directly: doubles its index (``program(n=index)``)."""

    def __init__(self, index: int, seen: list):
        self.index, self.key, self.inputs, self.seen = index, None, {"n": index}, seen

    @property
    def program(self):
        return _double

    def call(self) -> Any:
        self.seen.append(("call", self.index))
        return self.program(**self.inputs)

    async def acall(self) -> Any:
        self.seen.append(("acall", self.index))
        return self.program(**self.inputs)

    def keep(self, value: Any, usage: dict[str, int] | None = None, cost: float | None = None) -> None:
        """What a strategy running the program elsewhere calls with the result it got back."""
        self.seen.append(("keep", self.index))


class BatchStrategySuite:
    """The contract of :class:`dspy_turbo.plugin.batch.BatchStrategy`."""

    @pytest.fixture
    def strategy(self) -> type[BatchStrategy]:  # pragma: no cover - subclasses provide it
        raise NotImplementedError("provide a `strategy` fixture returning your BatchStrategy class")

    @pytest.fixture
    def batch_turbo(self, strategy):
        import dspy_turbo
        from dspy_turbo.plugin.hookspecs import hookimpl

        config = {"namespace": f"suite-{uuid.uuid4().hex[:12]}", "cache": {"tiers": [{"type": "memory"}]}}
        turbo = dspy_turbo.load(config)
        registered = turbo.registry.get("batch_strategy", strategy.name)
        if registered is None:
            turbo.close()
            plugin = _Registers(strategy)
            plugin.dspy_turbo_batch_strategies = hookimpl(plugin.dspy_turbo_batch_strategies)
            turbo = dspy_turbo.load(config, plugins=[plugin])
        elif registered is not strategy:
            turbo.close()
            raise AssertionError(f"another class is registered as batch strategy {strategy.name!r}: {registered!r}")
        yield turbo
        turbo.close()

    @pytest.fixture
    def batch_lm(self):
        import dspy

        from dspy_turbo.engines.offline import offline_lm

        lm = offline_lm("openai/gpt-4o-mini", latency=0.03, jitter=0.5)  # items finish out of order
        with dspy.context(lm=lm, adapter=None):
            yield lm

    def _run(self, turbo, strategy, questions, **options):
        probe = _Probe()
        results = turbo.batch(_program(probe), [{"question": q} for q in questions], strategy=strategy.name,
                              progress=False, **options)
        return results, probe

    def test_is_a_batch_strategy_component(self, strategy):
        assert isinstance(strategy, type) and issubclass(strategy, BatchStrategy)
        assert strategy.kind == "batch_strategy"
        assert strategy.name and strategy.name == strategy.name.lower()
        assert issubclass(strategy.Options, BatchOptions), "Options subclass BatchOptions: the common options stay valid"
        runner = strategy.from_options(strategy.Options(), None).runner(4)
        assert isinstance(runner, Runner)
        asyncio.run(runner.aclose())

    def test_the_runner_runs_each_item_once_and_returns_its_result(self, strategy):
        """Driven as the batch drives it: ``run(item)`` for at most ``max_concurrency`` items at
        once on one event loop, then ``aclose()``."""
        seen: list = []

        async def drive():
            runner = strategy.from_options(strategy.Options(), None).runner(3)
            try:
                limit = asyncio.Semaphore(3)

                async def one(item):
                    async with limit:
                        return await runner.run(item)

                items = [_Item(i, seen) for i in range(10)]
                assert all(isinstance(item, Item) for item in items)
                return await asyncio.gather(*(one(item) for item in items))
            finally:
                await runner.aclose()

        assert asyncio.run(drive()) == [i * 2 for i in range(10)]
        assert sorted(index for _, index in seen) == list(range(10)), "every item ran exactly once"

    def test_results_come_back_in_input_order(self, batch_turbo, strategy, batch_lm):
        questions = [f"question {i}" for i in range(30)]
        results, probe = self._run(batch_turbo, strategy, questions, max_concurrency=8)
        assert len(results) == 30
        assert all(f"{q!r}" in r.answer for q, r in zip(questions, results, strict=True))
        assert probe.started == 30 and batch_lm.engine.calls == 30

    def test_items_run_concurrently_up_to_max_concurrency(self, batch_turbo, strategy, batch_lm):
        _, probe = self._run(batch_turbo, strategy, [f"q{i}" for i in range(24)], max_concurrency=4)
        assert probe.peak <= 4, f"{probe.peak} items ran at once with max_concurrency=4"
        assert probe.peak >= 2, "items must overlap: a strategy runs them concurrently"

    def test_a_failed_item_fails_alone(self, batch_turbo, strategy, batch_lm):
        questions = ["q0", "fail 1", "q2", "q3"]
        results, _ = self._run(batch_turbo, strategy, questions, return_exceptions=True)
        assert isinstance(results[1], ValueError) and "fail 1" in str(results[1])
        assert all("Offline answer" in results[i].answer for i in (0, 2, 3))
        results, _ = self._run(batch_turbo, strategy, questions)
        assert results[1] is None, "without return_exceptions a failed item is None, as in dspy.Parallel"

    def test_max_errors_stops_the_batch(self, batch_turbo, strategy, batch_lm):
        from ..plugin.batch import BatchError

        with pytest.raises(BatchError):
            self._run(batch_turbo, strategy, [f"fail {i}" for i in range(20)], max_errors=3, max_concurrency=2)

    def test_a_slow_item_times_out(self, batch_turbo, strategy, batch_lm):
        results, _ = self._run(batch_turbo, strategy, ["q0", "slow 1", "q2"], timeout=0.3, return_exceptions=True)
        assert isinstance(results[1], TimeoutError)
        assert "Offline answer" in results[0].answer and "Offline answer" in results[2].answer

    def test_identical_items_make_one_lm_call_and_a_second_run_none(self, batch_turbo, strategy, batch_lm):
        results, _ = self._run(batch_turbo, strategy, ["same question"] * 12 + ["other"], max_concurrency=6)
        assert batch_lm.engine.calls == 2
        assert len({r.answer for r in results[:12]}) == 1
        again, _ = self._run(batch_turbo, strategy, ["same question"] * 12 + ["other"])
        assert batch_lm.engine.calls == 2, "a second run is served from the cache"
        assert [r.answer for r in again] == [r.answer for r in results]

    def test_abatch_from_a_running_event_loop(self, batch_turbo, strategy, batch_lm):
        async def main():
            probe = _Probe()
            return await batch_turbo.abatch(_program(probe), [{"question": f"async {i}"} for i in range(8)],
                                            strategy=strategy.name, progress=False)

        results = asyncio.run(main())
        assert all(f"'async {i}'" in r.answer for i, r in enumerate(results))
