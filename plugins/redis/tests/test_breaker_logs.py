"""A tier going down and coming back is logged once per transition: a WARNING when its
breaker opens, an INFO when it closes (a real Redis server, killed and restarted, under a
real DSPy program)."""

import logging
import time

import dspy
import pytest


def _lines(caplog, level):
    return [r.getMessage() for r in caplog.records if r.name == "dspy_turbo.breaker" and r.levelno == level]


@pytest.mark.timeout(120)
def test_breaker_transitions_are_logged_once_each(redis_server, make_turbo, lm, namespace, caplog):
    server = redis_server()
    turbo = make_turbo({"namespace": namespace, "cache": {
        "tiers": [{"type": "redis", "url": server.url, "timeout": "500ms"}],
        "breaker": {"failures": 2, "cooldown": "300ms"}}}).install()
    qa = dspy.Predict("question -> answer")
    caplog.set_level(logging.DEBUG, "dspy_turbo.breaker")
    qa(question="before the outage")
    port = server.port
    server.stop()
    for i in range(6):  # the program goes on; the tier fails, then is skipped
        qa(question=f"during the outage {i}")
    time.sleep(0.4)
    qa(question="a failed trial")  # half-open, the trial fails: open again, no new warning
    warnings = _lines(caplog, logging.WARNING)
    assert len([w for w in warnings if "reads failing" in w]) == 1, warnings
    assert len([w for w in warnings if "writes failing" in w]) == 1, warnings
    assert all("cache tier 'redis'" in w and "circuit breaker open" in w for w in warnings)
    assert all("last: " in w and "ConnectionError" in w for w in warnings)

    redis_server(port)  # back on the same port
    time.sleep(0.4)
    qa(question="after the outage")
    qa(question="after the outage 2")
    back = _lines(caplog, logging.INFO)
    assert len([b for b in back if "'redis' reads are back" in b]) == 1, back
    assert len([b for b in back if "'redis' writes are back" in b]) == 1, back
    # the coordinator's own breaker (leases, logs) went through the same two transitions
    assert len([w for w in _lines(caplog, logging.WARNING) if "coordination calls" in w]) == 1
    assert len([b for b in back if "coordination calls (leases, logs) are back" in b]) == 1
    assert len(_lines(caplog, logging.WARNING)) == 3 and len(back) == 3
    assert turbo.stats()["tiers"]["redis"]["breaker"] == "closed"
