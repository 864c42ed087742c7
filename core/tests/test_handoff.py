"""Metric sinks get events through a bounded queue on their own thread: a sink that blocks
or raises never slows or breaks the program, and what a full queue drops is counted."""

import threading
import time

import dspy
import pytest

import dspy_turbo
from dspy_turbo.events.bus import Event


def sink_plugin(*sink_classes):
    class Plugin:
        @dspy_turbo.hookimpl
        def dspy_turbo_metric_sinks(self):
            return list(sink_classes)

    return Plugin()


class Blocking(dspy_turbo.Component):
    """Blocks on the first event until released; records what it handled."""

    name, kind = "blocking", "metric_sink"
    entered = threading.Event()
    release = threading.Event()
    handled: list = []

    def __call__(self, event):
        self.entered.set()
        self.release.wait(30)
        self.handled.append(event)


@pytest.fixture
def blocking():
    Blocking.entered, Blocking.release, Blocking.handled = threading.Event(), threading.Event(), []
    yield Blocking
    Blocking.release.set()


@pytest.mark.timeout(60)
def test_a_blocked_sink_never_blocks_the_program_and_drops_are_counted(make_turbo, lm, blocking):
    turbo = make_turbo({"metrics": {"sinks": [{"type": "blocking"}], "queue_size": 5, "flush_timeout": "0.2s"}},
                       plugins=[sink_plugin(Blocking)]).install()
    predict = dspy.Predict("question -> answer")
    predict(question="q0")
    assert blocking.entered.wait(5), "the sink got the first event on its own thread"
    # The sink is stuck; the program goes on: 40 more questions, each a miss then a hit.
    for i in range(40):
        assert predict(question=f"q{i % 20}").answer
    stats = turbo.stats()
    assert stats["lm_calls"] == 20 and stats["hits_total"] == 21, "stats stay exact and synchronous"
    assert not turbo.flush_events(0.2), "a blocked sink: flush gives up after its timeout"
    emitted = stats["misses"] + stats["hits_total"] + stats["lm_calls"] + sum(stats["stores"].values())
    blocking.release.set()
    assert turbo.flush_events(5)
    dropped = turbo.stats()["dropped_events"]
    assert dropped > 0 and turbo.stats()["dropped_events_by_sink"] == {"metrics.sinks[0]:blocking": dropped}
    assert len(blocking.handled) == emitted - dropped, "every event is either handled or counted as dropped"
    assert len(blocking.handled) == 1 + 5, "the one in hand plus a full queue"


def test_drop_count_is_exact(make_turbo, blocking):
    turbo = make_turbo({"metrics": {"sinks": [{"type": "blocking"}], "queue_size": 5}}, plugins=[sink_plugin(Blocking)])
    turbo.bus.emit(Event("custom"))
    assert blocking.entered.wait(5)
    for _ in range(49):
        turbo.bus.emit(Event("custom"))
    assert turbo.stats()["dropped_events"] == 44
    blocking.release.set()
    assert turbo.flush_events(5)
    assert len(blocking.handled) == 6


def test_a_raising_sink_is_counted_and_the_others_still_see_everything(make_turbo, lm, caplog):
    seen = []

    class Raising(dspy_turbo.Component):
        name, kind = "raising", "metric_sink"

        def __call__(self, event):
            raise RuntimeError("sink down")

    class Recorder:
        @dspy_turbo.hookimpl
        def dspy_turbo_metric_event(self, event):
            seen.append(event.kind)

    turbo = make_turbo({"metrics": {"sinks": [{"type": "raising"}]}}, plugins=[sink_plugin(Raising), Recorder()]).install()
    with caplog.at_level("WARNING", logger="dspy_turbo.events"):
        for _ in range(3):
            lm("hello")
        assert turbo.flush_events(5)
    assert seen.count("hit") == 2 and seen.count("lm_call") == 1
    assert turbo.stats()["sink_errors"] == {"metrics.sinks[0]:raising": len(seen)}
    assert sum("sink down" in r.getMessage() for r in caplog.records) == 1, "logged once, then counted"


def test_close_flushes_pending_events_and_does_not_hang_on_a_blocked_sink(make_turbo, blocking):
    got = []

    class Slow(dspy_turbo.Component):
        name, kind = "slow", "metric_sink"

        def __call__(self, event):
            time.sleep(0.01)
            got.append(event)

    turbo = dspy_turbo.load({"metrics": {"sinks": [{"type": "slow"}, {"type": "blocking"}], "flush_timeout": "1s"}},
                            plugins=[sink_plugin(Slow, Blocking)])
    for _ in range(20):
        turbo.bus.emit(Event("custom"))
    started = time.monotonic()
    turbo.close()
    assert time.monotonic() - started < 3, "close waits at most flush_timeout for a stuck sink"
    assert len(got) == 20, "a slow but working sink loses nothing at close"


def test_tick_runs_without_traffic(make_turbo):
    ticks = threading.Event()

    class Ticking(dspy_turbo.Component):
        name, kind = "ticking", "metric_sink"

        def __call__(self, event):
            pass

        def tick(self):
            ticks.set()

    make_turbo({"metrics": {"sinks": [{"type": "ticking"}]}}, plugins=[sink_plugin(Ticking)])
    assert ticks.wait(5)


def test_queue_size_is_validated(make_turbo):
    with pytest.raises(dspy_turbo.ConfigError, match=r"metrics\.queue_size"):
        make_turbo({"metrics": {"queue_size": 0}})


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_forked_worker_still_delivers_events(make_turbo, tmp_path):
    import os

    out = tmp_path / "child-events"

    class FileSink(dspy_turbo.Component):
        name, kind = "file", "metric_sink"

        def __call__(self, event):
            with open(out, "a") as f:
                f.write(f"{os.getpid()} {event.kind}\n")

    turbo = make_turbo({"metrics": {"sinks": [{"type": "file"}]}}, plugins=[sink_plugin(FileSink)])
    pid = os.fork()
    if pid == 0:  # the child: as a gunicorn worker forked after the app built its Turbo
        try:
            turbo.bus.emit(Event("custom"))
            os._exit(0 if turbo.flush_events(5) else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert out.read_text() == f"{pid} custom\n"


def test_a_caller_context_sink_sees_the_emitting_threads_context(make_turbo, lm):
    """A tracer's sink needs the caller's current span: with ``caller_context = True`` each event is
    handled (on the sink's thread) inside a copy of the context it was emitted in; other sinks are not."""
    import contextvars

    from dspy_turbo.plugin.sink import MetricSink

    request_id = contextvars.ContextVar("request_id", default=None)

    class Recording(MetricSink):
        name = "recording"
        caller_context = True

        def __init__(self, options=None):
            super().__init__(options)
            self.seen = []

        def __call__(self, event):
            self.seen.append((event.kind, request_id.get(), threading.current_thread().name))
            if self.caller_context:
                request_id.set("changed by the sink")  # stays in the sink's copy of the caller's context

        def handle_batch(self, events):  # never used for a caller-context sink: each event has its context
            raise AssertionError("handle_batch called")

    class Plain(Recording):
        name = "plain"
        caller_context = False

        def handle_batch(self, events):
            for event in events:
                self(event)

    turbo = make_turbo({"cache": {"tiers": [{"type": "memory"}]},
                        "metrics": {"sinks": [{"type": "recording"}, {"type": "plain"}]}},
                       plugins=[sink_plugin(Recording, Plain)]).install()
    recording, plain = turbo.sinks
    predict = dspy.Predict("question -> answer")

    def ask(rid):
        request_id.set(rid)
        with dspy.context(lm=lm, adapter=None):
            predict(question="same question")

    ask("main-1")
    worker = threading.Thread(target=ask, args=("thread-2",))
    worker.start()
    worker.join()
    assert turbo.flush_events(5)
    assert request_id.get() == "main-1", "the sink's changes stay in its copy"
    assert [(kind, rid) for kind, rid, _ in recording.seen if kind in ("hit", "miss", "lm_call")] == [
        ("miss", "main-1"), ("lm_call", "main-1"), ("hit", "thread-2")]
    assert all(name.startswith("dspy-turbo-sink:") for _, _, name in recording.seen), "still on the sink's thread"
    assert {rid for _, rid, _ in plain.seen} == {None}, "a sink that does not ask gets no caller context"
