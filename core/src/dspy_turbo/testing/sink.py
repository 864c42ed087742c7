"""Conformance suite of metric sinks (``dspy_turbo.plugin.sink``).

    import pytest
    from dspy_turbo.testing import MetricSinkSuite

    class TestMySink(MetricSinkSuite):
        @pytest.fixture
        def sink(self):
            sink = MySink(MySink.Options(...))
            yield sink
            sink.close()

        @pytest.fixture
        def exported(self):
            # Optional: what the sink has written or serves so far, as text (log lines,
            # a metrics page); the no-secret tests are skipped without it.
            return lambda sink: sink.render()

Every event the suite sends is built from the event table (``dspy_turbo.plugin.events.EVENTS``):
one of each kind with every field its kind sets, the same with no field set, and a kind no
table lists (a plugin's own).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from ..plugin.components import Component
from ..plugin.events import EVENTS, Event, EventKind
from ..plugin.sink import MetricSink

_SECRET_KEY = "suite:v2:5ec12e7ca11ed0000000000000000000"
_SECRET_ERROR = "ValueError: user question 'what is my card number 4111 1111'"
_TEXT_EXTRA = {"state": "firing", "strategy": "thread", "source": "selector", "scope": "a1b2c3", "signature": "question -> answer",
               "tier": "small", "op": "above", "metric": "hit_rate", "baseline_model": "openai/gpt-4o", "component": "core"}


def sample_event(kind: EventKind, *, key: str = "suite:v2:0123", error: str = "ValueError: boom") -> Event:
    """One event of ``kind`` with every field the table says it sets, and plausible values."""
    values: dict[str, Any] = {"tier": "memory", "latency": 0.012, "model": "openai/gpt-4o-mini", "tokens": 42,
                              "cost": 0.0021, "error": error, "key": key,
                              "reason": sorted(kind.reasons)[0] if kind.reasons else "get"}
    extra = {name: _TEXT_EXTRA.get(name, True if name == "cached" else 3) for name in sorted(kind.extra)}
    fields = {name: values[name] for name in kind.fields}
    return Event(kind.name, namespace="suite", extra=extra or None, **fields)


class MetricSinkSuite:
    """The contract of :class:`dspy_turbo.plugin.sink.MetricSink`."""

    @pytest.fixture
    def sink(self):  # pragma: no cover - subclasses provide it
        raise NotImplementedError("provide a `sink` fixture that builds your metric sink")

    @pytest.fixture
    def exported(self):
        return None

    def _send(self, sink, events: list[Event]) -> None:
        handle_batch = getattr(sink, "handle_batch", None)
        for event in events:
            sink(event)
        if handle_batch is not None:
            handle_batch(list(events))

    def test_is_a_metric_sink_component(self, sink):
        assert isinstance(sink, Component) and sink.kind == "metric_sink"
        assert sink.name and sink.name == sink.name.lower()
        assert callable(sink)
        assert isinstance(sink, MetricSink), "subclass dspy_turbo.plugin.sink.MetricSink"

    def test_every_kind_of_the_event_table_is_handled(self, sink):
        """One event of each kind the core emits, with every field its kind sets: none raises,
        through ``__call__`` and through ``handle_batch`` when the sink has it."""
        self._send(sink, [sample_event(kind) for kind in EVENTS.values()])

    def test_an_event_with_no_optional_field_is_handled(self, sink):
        """Every field but ``kind`` may be ``None`` (``tokens`` 0): a sink must not assume one is set."""
        self._send(sink, [Event(kind) for kind in EVENTS])

    def test_a_kind_it_does_not_know_is_ignored(self, sink):
        """Plugins emit kinds of their own; a sink ignores what it does not know."""
        self._send(sink, [Event("suite_plugin_kind", tier="x", reason="y", extra={"anything": [1, 2]}),
                          Event("hit", extra={"a_new_key": {"nested": True}})])

    def test_optional_methods_can_be_called_at_any_time(self, sink):
        """``flush`` and ``tick`` (when the sink has them) work before, between and after events."""
        for name in ("flush", "tick"):
            method = getattr(sink, name, None)
            if method is not None:
                method()
        self._send(sink, [sample_event(EVENTS["hit"])])
        for name in ("tick", "flush"):
            method = getattr(sink, name, None)
            if method is not None:
                method()

    def test_keys_and_error_messages_stay_out_of_what_it_exports(self, sink, exported):
        """A key is a hash of a request and an error message may quote one: neither is exported
        (by default) nor used as a label, whose values would be unbounded."""
        if exported is None:
            pytest.skip("no `exported` fixture: the suite cannot read what this sink writes")
        self._send(sink, [sample_event(kind, key=_SECRET_KEY, error=_SECRET_ERROR) for kind in EVENTS.values()])
        for name in ("flush", "tick"):
            if getattr(sink, name, None) is not None:
                getattr(sink, name)()
        text = exported(sink)
        assert text, "the sink exported nothing for a full set of events"
        assert _SECRET_KEY not in text and "5ec12e7ca11ed" not in text, "a cache key reached the output"
        assert "4111 1111" not in text, "an error message reached the output"

    def test_it_receives_a_real_turbos_events(self, sink, exported):
        """Fed by a real Turbo's event bus (its own background thread, as the host runs sinks):
        stores, hits and misses reach it and it never raises."""
        import dspy_turbo

        turbo = dspy_turbo.load({"namespace": f"suite-{uuid.uuid4().hex[:12]}", "cache": {"tiers": [{"type": "memory"}]}})
        try:
            turbo.bus.add_background("suite-sink", sink)
            for i in range(20):
                key = turbo.key({"question": f"q{i % 5}"})
                if turbo.lookup(key) is None:
                    turbo.store(key, {"answer": i})
            assert turbo.flush_events(10), "the sink did not keep up with 40 events in 10 s"
            assert turbo.bus.sink_errors.get("suite-sink", 0) == 0, "the sink raised on a real event"
        finally:
            turbo.bus.remove("suite-sink")
            turbo.close()
        if exported is not None:
            assert exported(sink), "the sink exported nothing for a real Turbo's events"
