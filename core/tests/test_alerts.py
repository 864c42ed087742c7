"""Alert rules: validated with YAML paths; fire an event to every sink and a warning when
crossed; resolve when the condition stops holding."""

import logging

import dspy
import pytest

import dspy_turbo
from dspy_turbo.events.alerts import AlertMonitor, AlertRule
from dspy_turbo.events.bus import Event, EventBus


class ListSink(dspy_turbo.Component):
    name, kind = "list", "metric_sink"
    received: list = []

    def __call__(self, event):
        self.received.append(event)


class Plugin:
    @dspy_turbo.hookimpl
    def dspy_turbo_metric_sinks(self):
        return [ListSink]


def alerts_of(events):
    return [(e.reason, e.extra["state"]) for e in events if e.kind == "alert"]


def test_low_hit_rate_fires_then_resolves_with_a_real_program(make_turbo, lm, caplog):
    ListSink.received = []
    rule = {"name": "low-hit-rate", "metric": "hit_rate", "below": 0.5, "window": "5m", "min_events": 4}
    turbo = make_turbo({"metrics": {"sinks": [{"type": "list"}], "alerts": [rule]}}, plugins=[Plugin()]).install()
    predict = dspy.Predict("question -> answer")
    with caplog.at_level(logging.WARNING, logger="dspy_turbo.alerts"):
        for i in range(4):
            predict(question=f"new question {i}")  # all misses: hit rate 0
        assert turbo.flush_events(5)
    assert alerts_of(ListSink.received) == [("low-hit-rate", "firing")]
    assert turbo.stats()["alerts_firing"] == ["low-hit-rate"]
    warning = [r.getMessage() for r in caplog.records if r.name == "dspy_turbo.alerts"]
    assert warning and "low-hit-rate firing" in warning[0] and "hit_rate 0 < 0.5" in warning[0]

    for _ in range(3):
        for i in range(4):
            predict(question=f"new question {i}")  # hits: 12 of 16 lookups
    assert turbo.flush_events(5)
    assert alerts_of(ListSink.received) == [("low-hit-rate", "firing"), ("low-hit-rate", "resolved")]
    assert turbo.stats()["alerts_firing"] == []


def test_latency_and_error_rules_on_a_fake_clock():
    now = [1000.0]
    bus = EventBus()
    seen = []
    bus.add("seen", seen.append)
    rules = [AlertRule(name="slow", metric="lm_latency_p95", above="500ms", window="1m", min_events=5),
             AlertRule(name="errors", metric="error_rate", above=0.2, window="10s", min_events=5)]
    monitor = AlertMonitor(rules, bus, clock=lambda: now[0])
    for _ in range(10):
        monitor(Event("lm_call", latency=0.9))
    monitor.evaluate()
    assert monitor.firing() == ["slow"]
    for _ in range(5):
        monitor(Event("lm_call", error="TimeoutError"))
    monitor.evaluate()
    assert monitor.firing() == ["errors", "slow"]
    now[0] += 30  # the errors fall out of their 10 s window; too few events left to judge: resolved
    monitor.evaluate()
    assert monitor.firing() == ["slow"]
    now[0] += 61
    monitor.evaluate()
    assert monitor.firing() == []
    states = [(e.reason, e.extra["state"]) for e in seen if e.kind == "alert"]
    assert states == [("slow", "firing"), ("errors", "firing"), ("errors", "resolved"), ("slow", "resolved")]
    assert seen[0].extra["value"] == pytest.approx(0.9) and seen[0].extra["threshold"] == 0.5


@pytest.mark.parametrize("rule, path, message", [
    ({"name": "a", "metric": "hit_rate"}, "metrics.alerts[0]", "exactly one of 'below' or 'above'"),
    ({"name": "a", "metric": "hit_rate", "below": 0.5, "above": 0.9}, "metrics.alerts[0]", "exactly one"),
    ({"name": "a", "metric": "hit_ratio", "below": 0.5}, "metrics.alerts[0].metric", "hit_rate"),
    ({"name": "a", "metric": "hit_rate", "below": 50}, "metrics.alerts[0]", "fraction between 0 and 1"),
    ({"name": "a", "metric": "lm_latency_p95", "above": "fast"}, "metrics.alerts[0]", "not a duration"),
    ({"name": "a b", "metric": "hit_rate", "below": 0.5}, "metrics.alerts[0].name", "only letters, digits"),
    ({"name": "a", "metric": "hit_rate", "below": 0.5, "windw": "1m"}, "metrics.alerts[0].windw", "did you mean 'window'"),
])
def test_bad_rules_are_config_errors_with_their_path(make_turbo, rule, path, message):
    with pytest.raises(dspy_turbo.ConfigError) as info:
        make_turbo({"metrics": {"alerts": [rule]}})
    text = str(info.value)
    assert f"{path}:" in text and message in text


def test_an_alert_that_resolves_is_logged_at_warning_as_its_firing_was(caplog):
    """An operator filtering at WARNING sees each alert end, not only begin."""
    now = [1000.0]
    monitor = AlertMonitor([AlertRule(name="low-hit-rate", metric="hit_rate", below=0.5, window="10s", min_events=4)],
                           EventBus(), clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="dspy_turbo.alerts"):
        for _ in range(4):
            monitor(Event("miss"))
        monitor.evaluate()
        for _ in range(12):
            monitor(Event("hit", tier="memory"))
        monitor.evaluate()
    assert monitor.firing() == []
    logged = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "dspy_turbo.alerts"]
    assert [level for level, _ in logged] == ["WARNING", "WARNING"], logged
    assert "low-hit-rate firing: hit_rate 0 < 0.5" in logged[0][1]
    assert "low-hit-rate resolved: hit_rate 0.75 < 0.5" in logged[1][1], logged
