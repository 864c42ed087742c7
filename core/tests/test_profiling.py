"""turbo.profile() and turbo.timed(name): hot spots as a table, timed events to every sink."""

import asyncio
import time

import dspy
import pytest

import dspy_turbo


def slow_helper():
    time.sleep(0.2)  # well above the sum below even on a loaded machine
    return sum(i * i for i in range(20_000))


def test_profile_shows_the_hot_spots_of_a_dspy_program(turbo):
    predict = dspy.Predict("question -> answer")
    with turbo.profile(top=8) as prof:
        predict(question="What is DSPy?")
        slow_helper()
    names = [row.function for row in prof.rows]
    assert len(prof.rows) == 8
    assert any("predict.py" in n for n in names), names
    assert prof.rows[0].total_s >= prof.rows[-1].total_s, "sorted by cumulative time"
    table = prof.table()
    assert table.splitlines()[1].split() == ["calls", "own", "s", "total", "s", "function"]
    assert turbo.stats()["timed"]["profile"]["count"] == 1
    by_own = turbo.profile(top=3, sort="tottime")
    with by_own:
        slow_helper()
    assert "sleep" in by_own.rows[0].function, "the sleep is the biggest own-time spot"


def test_timed_as_decorator_and_block_feeds_stats_and_sinks(make_turbo):
    seen = []

    class Recorder:
        @dspy_turbo.hookimpl
        def dspy_turbo_metric_event(self, event):
            if event.kind == "timed":
                seen.append((event.reason, event.error is not None))

    turbo = make_turbo(None, plugins=[Recorder()])

    @turbo.timed("retrieve")
    def retrieve(fail=False):
        if fail:
            raise KeyError("missing")
        return [1, 2]

    @turbo.timed("aretrieve")
    async def aretrieve():
        await asyncio.sleep(0.001)
        return "ok"

    assert retrieve() == [1, 2]
    with pytest.raises(KeyError):
        retrieve(fail=True)
    assert asyncio.run(aretrieve()) == "ok"
    with turbo.timed("block"):
        time.sleep(0.01)
    timed = turbo.stats()["timed"]
    assert timed["retrieve"]["count"] == 2 and timed["retrieve"]["errors"] == 1
    assert timed["aretrieve"]["count"] == 1 and timed["block"]["p50_ms"] >= 10
    assert turbo.flush_events(5)
    assert sorted(seen) == [("aretrieve", False), ("block", False), ("retrieve", False), ("retrieve", True)]


def test_timed_names_must_be_fixed_labels(make_turbo):
    turbo = make_turbo()
    with pytest.raises(ValueError, match="metric label"):
        turbo.timed("What is the capital of France?")
