"""The log sink: structured lines through logging, levels per kind, sampling, no request text."""

import json
import logging

import dspy
import pytest

import dspy_turbo

LOGGER = "dspy_turbo.events.log"


def lines(caplog):
    return [r for r in caplog.records if r.name == LOGGER]


def test_json_lines_for_a_real_program_without_request_text(make_turbo, lm, caplog):
    turbo = make_turbo({"metrics": {"sinks": [{"type": "log"}]}}).install()
    predict = dspy.Predict("question -> answer")
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        predict(question="What is the secret plan of Zanzibar?")
        predict(question="What is the secret plan of Zanzibar?")
        assert turbo.flush_events(5)
    records = lines(caplog)
    events = [json.loads(r.getMessage()) for r in records]
    kinds = [e["event"] for e in events]
    assert kinds.count("miss") == 1 and kinds.count("hit") == 1 and kinds.count("lm_call") == 1
    call = next(e for e in events if e["event"] == "lm_call")
    assert call["model"] == "openai/gpt-4o-mini" and call["tokens"] == call["input_tokens"] + call["output_tokens"]
    assert call["cost_usd"] > 0 and call["latency_s"] >= 0
    levels = {json.loads(r.getMessage())["event"]: r.levelname for r in records}
    assert levels["lm_call"] == "INFO" and levels["hit"] == "DEBUG"
    text = "\n".join(r.getMessage() for r in records)
    assert "Zanzibar" not in text and "key" not in events[0], "no request text, no keys by default"


def test_kv_format_levels_and_details(make_turbo, caplog):
    turbo = make_turbo({"metrics": {"sinks": [{"type": "log", "format": "kv", "levels": {"error": "error"},
                                               "include_details": True}]}})
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        turbo.bus.emit(dspy_turbo.Event("error", tier="redis", reason="get", error="ConnectionError: refused now",
                                        key="ns:v1:abc"))
        assert turbo.flush_events(5)
    (record,) = lines(caplog)
    assert record.levelname == "ERROR"
    assert record.getMessage() == ('event=error tier=redis reason=get error_type=ConnectionError '
                                   'error="ConnectionError: refused now" key=ns:v1:abc')


def test_sampling_keeps_a_fraction_of_high_volume_kinds(make_turbo, caplog):
    turbo = make_turbo({"metrics": {"sinks": [{"type": "log", "sample": {"hit": 0.1, "miss": 0.0}, "seed": 7}]}})
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        for _ in range(1000):
            turbo.bus.emit(dspy_turbo.Event("hit", tier="memory"))
            turbo.bus.emit(dspy_turbo.Event("miss"))
        turbo.bus.emit(dspy_turbo.Event("lm_call", model="m", latency=0.1))
        assert turbo.flush_events(5)
    kinds = [json.loads(r.getMessage())["event"] for r in lines(caplog)]
    assert 60 <= kinds.count("hit") <= 140 and kinds.count("miss") == 0 and kinds.count("lm_call") == 1


def test_bad_options_name_their_path(make_turbo):
    with pytest.raises(dspy_turbo.ConfigError) as info:
        make_turbo({"metrics": {"sinks": [{"type": "log", "format": "xml", "levels": {"hit": "LOUD"}, "sample": {"hit": 2}}]}})
    text = str(info.value)
    for path in ("metrics.sinks[0].format", "metrics.sinks[0].levels", "metrics.sinks[0].sample"):
        assert path in text


def test_alerts_and_their_recovery_are_warnings(make_turbo, lm, caplog):
    """An operator filtering at WARNING sees the resolution of each alert it saw fire."""
    rule = {"name": "low-hit-rate", "metric": "hit_rate", "below": 0.5, "min_events": 3}
    turbo = make_turbo({"metrics": {"sinks": [{"type": "log"}], "alerts": [rule]}}).install()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for i in range(3):
            lm(f"cold {i}")
        assert turbo.flush_events(5)
        for _ in range(3):
            for i in range(3):
                lm(f"cold {i}")
        assert turbo.flush_events(5)
    alerts = [(r.levelname, json.loads(r.getMessage())) for r in lines(caplog) if '"alert"' in r.getMessage()]
    assert [(level, a["reason"], a["state"]) for level, a in alerts] == [
        ("WARNING", "low-hit-rate", "firing"), ("WARNING", "low-hit-rate", "resolved")]
    assert alerts[0][1]["metric"] == "hit_rate" and alerts[0][1]["value"] == 0 and alerts[0][1]["threshold"] == 0.5
