"""``turbo.batch`` and its siblings hand each batch to the ``dspy_turbo_batch_runner`` hook.

The batch machinery lives in dspy-turbo-batching; the core keeps the entry points. These
run with the core alone (no entry-point plugin loaded): with no runner a batch says what to
install; a runner a plugin registers receives the calls as the user made them.
"""

from __future__ import annotations

import asyncio
import sys

import dspy
import pytest

import dspy_turbo
from dspy_turbo.host.batching import BatchingUnavailable
from dspy_turbo.plugin.batch import BatchHost

MEMORY = {"cache": {"tiers": [{"type": "memory"}]}}
PROGRAM = dspy.Predict("question -> answer")


def _core_alone(**kwargs):
    return dspy_turbo.load(MEMORY, entry_points=False, **kwargs)


def test_a_batch_without_dspy_turbo_batching_says_what_to_install():
    turbo = _core_alone()
    try:
        calls = [
            lambda: turbo.batch(PROGRAM, [{"question": "q"}]),
            lambda: list(turbo.batch_iter(PROGRAM, [{"question": "q"}])),
            lambda: asyncio.run(turbo.abatch(PROGRAM, [{"question": "q"}])),
            lambda: turbo.abatch_iter(PROGRAM, [{"question": "q"}]),
        ]
        for call in calls:
            with pytest.raises(BatchingUnavailable, match=r"pip install dspy-turbo-batching"):
                call()
    finally:
        turbo.close()


class Recorder:
    """A batch runner that records what it was asked (every result: the inputs' question)."""

    def __init__(self, host):
        self.host = host
        self.calls = []

    def batch(self, program, examples, *, strategy=None, **options):
        self.calls.append(("batch", program, strategy, options))
        return [e["question"] for e in examples]

    def batch_iter(self, program, examples, *, strategy=None, **options):
        self.calls.append(("batch_iter", program, strategy, options))
        return iter([e["question"] for e in examples])

    async def abatch(self, program, examples, *, strategy=None, **options):
        self.calls.append(("abatch", program, strategy, options))
        return [e["question"] for e in examples]

    async def abatch_iter(self, program, examples, *, strategy=None, **options):
        self.calls.append(("abatch_iter", program, strategy, options))
        for e in examples:
            yield e["question"]


def test_a_plugins_batch_runner_receives_every_batch_as_the_user_called_it():
    runners = []

    class RunnerPlugin:
        @dspy_turbo.hookimpl
        def dspy_turbo_batch_runner(self, host):
            runners.append(Recorder(host))
            return runners[-1]

    turbo = _core_alone(plugins=[RunnerPlugin()])
    try:
        examples = [{"question": "a"}, {"question": "b"}]
        assert turbo.batch(PROGRAM, examples, strategy="mine", max_concurrency=3) == ["a", "b"]
        assert list(turbo.batch_iter(PROGRAM, examples, timeout=2)) == ["a", "b"]
        assert asyncio.run(turbo.abatch(PROGRAM, examples, strategy="x")) == ["a", "b"]

        async def stream():
            return [r async for r in turbo.abatch_iter(PROGRAM, examples, progress=False)]

        assert asyncio.run(stream()) == ["a", "b"]
        assert [r.calls[0] for r in runners] == [
            ("batch", PROGRAM, "mine", {"max_concurrency": 3}), ("batch_iter", PROGRAM, None, {"timeout": 2}),
            ("abatch", PROGRAM, "x", {}), ("abatch_iter", PROGRAM, None, {"progress": False})]
        host = runners[0].host
        assert isinstance(host, BatchHost)
        assert host.namespace == turbo.namespace and host.component_host is turbo
        assert host.settings() == (None, {})
    finally:
        turbo.close()


def test_the_hosts_item_cache_is_the_one_cached_module_uses():
    """A result a batch stores under ``host.item_key`` is a hit for ``CachedModule`` (same keys)."""
    seen = []

    class RunnerPlugin:
        @dspy_turbo.hookimpl
        def dspy_turbo_batch_runner(self, host):
            seen.append(host)
            return Recorder(host)

    class Program(dspy.Module):
        def forward(self, question):
            raise AssertionError("served from the item cache, never run")

    turbo = _core_alone(plugins=[RunnerPlugin()])
    try:
        turbo.batch(PROGRAM, [])
        host = seen[0]
        program = Program()
        key = host.item_key(program, {"question": "q"})
        assert key is not None and key == host.item_key(program, {"question": "q"}, host.program_key(program))
        prediction = dspy.Prediction(answer="stored")
        host.store_item(key, prediction)
        value, entry = host.lookup_items([key])[key]
        assert value.answer == "stored" and value is not prediction
        cached = dspy_turbo.CachedModule(program, turbo=turbo, item_cache=True)
        assert cached(question="q").answer == "stored"
        with dspy_turbo.bypass():
            assert host.lookup_items([key]) == {}
        with pytest.raises(ValueError, match="unknown batch strategy 'thread'.*pip install dspy-turbo-batching"):
            host.strategy("thread")
    finally:
        turbo.close()


def test_an_old_import_path_of_the_machinery_says_what_to_install(monkeypatch):
    import dspy_turbo.ratelimit as old

    monkeypatch.setitem(sys.modules, "dspy_turbo_batching", None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "dspy_turbo_batching.ratelimit", raising=False)
    with pytest.warns(DeprecationWarning, match="moved to dspy_turbo_batching.ratelimit"):
        with pytest.raises(ImportError, match=r"pip install dspy-turbo-batching"):
            old.RateLimiter  # noqa: B018
    with pytest.raises(AttributeError):
        old.NoSuchName  # noqa: B018
