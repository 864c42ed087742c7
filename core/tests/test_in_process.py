"""Which tiers the event loop may call inline (``CacheBackend.in_process``)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
import time

import dspy
import pytest

import dspy_turbo
from dspy_turbo.engines.offline import offline_lm
from dspy_turbo.integration.dspy_cache import runs_inline


class _Forwarding:
    """A wrapper (as dspy_turbo_wrap_backend may return) that forwards every attribute."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)


@pytest.fixture
def turbo():
    t = dspy_turbo.load({"cache": {"tiers": [{"type": "memory"}]}})
    yield t
    t.close()


@pytest.mark.requires_plugin("sqlite_example")
def test_memory_tiers_are_in_process_and_others_are_not(turbo, tmp_path):
    assert turbo.cache.in_process
    mixed = dspy_turbo.load({"cache": {"tiers": [{"type": "memory"}, {"type": "sqlite", "path": str(tmp_path / "c.db")}]}})
    try:
        assert not mixed.cache.in_process
    finally:
        mixed.close()


def test_a_forwarding_wrapper_does_not_inherit_the_claim(turbo):
    turbo.cache.tiers[0].backend = _Forwarding(turbo.cache.tiers[0].backend)
    assert not turbo.cache.in_process


@pytest.mark.parametrize("wrapped", [False, True])
def test_async_calls_hit_and_miss_the_same_either_way(turbo, wrapped):
    if wrapped:  # not in-process: the pre-check goes to a thread, as DSPy does
        turbo.cache.tiers[0].backend = _Forwarding(turbo.cache.tiers[0].backend)
    lm = offline_lm("openai/gpt-4o-mini")
    program = dspy.Predict("question -> answer")

    async def run():
        with dspy.context(lm=lm):
            first = await program.acall(question="what is inline?")
            second = await program.acall(question="what is inline?")
        return first, second

    with turbo:
        first, second = asyncio.run(run())
    assert first.answer == second.answer
    assert lm.engine.calls == 1
    stats = turbo.stats()
    assert (sum(stats["hits"].values()), stats["misses"]) == (1, 1)


def _to_thread_task(fn, *args):
    """What asyncio.to_thread hands the loop's executor."""
    return functools.partial(contextvars.copy_context().run, fn, *args)


@pytest.mark.requires_plugin("sqlite_example")
def test_dspy_cache_helpers_run_inline_only_when_the_installed_turbo_is_in_process(turbo, tmp_path):
    import dspy.clients.execution as execution

    assert not runs_inline(_to_thread_task(execution._store))  # nothing installed: DSPy's own cache may do I/O
    with turbo:
        assert runs_inline(_to_thread_task(execution._store)) and runs_inline(_to_thread_task(execution._cached))
        assert runs_inline(_to_thread_task(execution.prepare))
        assert not runs_inline(_to_thread_task(time.sleep, 1)), "the program's own to_thread calls keep their thread"
    on_disk = dspy_turbo.load({"cache": {"tiers": [{"type": "memory"}, {"type": "sqlite", "path": str(tmp_path / "c.db")}]}})
    with on_disk:
        assert not runs_inline(_to_thread_task(execution._store))
        assert runs_inline(_to_thread_task(execution.prepare)), "preparing a call does no I/O whatever the tiers"


@pytest.mark.requires_plugin("batching")
def test_an_async_batch_runs_dspys_cache_helpers_on_its_loop_thread(turbo, monkeypatch):
    import dspy_turbo.integration.dspy_cache as integration

    seen = []
    original = integration.runs_inline

    def spy(task):
        inline = original(task)
        seen.append((getattr(task, "args", (task,))[0].__name__, inline, threading.current_thread().name))
        return inline

    monkeypatch.setattr(integration, "runs_inline", spy)
    with dspy.context(lm=offline_lm("openai/gpt-4o-mini")):
        results = turbo.batch(dspy.Predict("question -> answer"), [{"question": f"inline {i}?"} for i in range(5)],
                              strategy="async", progress=False)
    assert all(r.answer for r in results)
    helpers = {name for name, inline, _ in seen if inline}
    assert {"prepare", "_cached", "_store"} <= helpers
    assert all(thread == "dspy-turbo-batch" for _, inline, thread in seen if inline)


def test_a_store_hook_keeps_the_cache_write_on_a_thread_but_not_the_read(tmp_path):
    import dspy.clients.execution as execution

    class Veto:
        @dspy_turbo.hookimpl
        def dspy_turbo_should_store(self, request, value, entry, reason, turbo):
            return None  # user code: it may do I/O

    hooked = dspy_turbo.load({"cache": {"tiers": [{"type": "memory"}]}}, plugins=[Veto()])
    with hooked:
        assert runs_inline(_to_thread_task(execution._cached))
        assert not runs_inline(_to_thread_task(execution._store))
