"""The ``async`` strategy starts items one loop pass apart, in batch order: the earlier ones
run ahead (their LM requests go out first) instead of all items advancing in lockstep.
Stopping a batch never leaves an item waiting for its turn."""

from __future__ import annotations

import asyncio

import pytest


def _config(**batching):
    return {"cache": {"tiers": [{"type": "memory"}]}, "batching": {"type": "async", **batching}}


def _stepping(log: list):
    """An async program whose every item takes a few passes of the loop (as an LM call over
    DSPy's async HTTP transport does), logging where each item is."""

    async def program(i):
        log.append(("start", i))
        for step in range(4):
            await asyncio.sleep(0)
            log.append(("step", i, step))
        return i * 10

    return program


def test_earlier_items_run_ahead_of_later_ones(make_turbo):
    log: list = []
    turbo = make_turbo(_config(max_concurrency=16))
    results = turbo.batch(_stepping(log), [{"i": i} for i in range(16)], item_cache=False)
    assert results == [i * 10 for i in range(16)]
    starts = [entry[1] for entry in log if entry[0] == "start"]
    assert starts == list(range(16))  # in batch order
    # the first item is through its steps before the last one has started (in lockstep all
    # 16 would start first)
    assert log.index(("step", 0, 3)) < log.index(("start", 15))


def test_the_same_results_as_the_thread_strategy(make_turbo):
    examples = [{"i": i} for i in range(40)]
    turbo = make_turbo(_config(max_concurrency=8))

    def plain(i):
        return i * 10

    assert turbo.batch(_stepping([]), examples, item_cache=False) == \
        turbo.batch(plain, examples, strategy="thread", item_cache=False)


async def test_items_that_fail_or_time_out_release_the_next_ones(make_turbo):
    started: list = []

    async def program(i):
        started.append(i)
        if i % 5 == 1:
            raise ValueError(f"item {i}")
        await asyncio.sleep(1.0 if i % 5 == 2 else 0.001)
        return i

    turbo = make_turbo(_config(max_concurrency=4))
    results = await asyncio.wait_for(
        turbo.abatch(program, [{"i": i} for i in range(20)], item_cache=False, timeout=0.2, return_exceptions=True),
        30)
    assert sorted(started) == list(range(20))
    for i, result in enumerate(results):
        if i % 5 == 1:
            assert isinstance(result, ValueError)
        elif i % 5 == 2:
            assert isinstance(result, TimeoutError)
        else:
            assert result == i


async def test_cancelling_the_batch_while_items_wait_their_turn(make_turbo):
    started: list = []

    async def program(i):
        started.append(i)
        await asyncio.sleep(10)

    turbo = make_turbo(_config(max_concurrency=64))
    task = asyncio.create_task(turbo.abatch(program, [{"i": i} for i in range(64)], item_cache=False))
    while not started:
        await asyncio.sleep(0)
    task.cancel()  # most items are still waiting for their turn
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert len(started) < 64
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
