"""The log sink passes the SDK's metric sink conformance suite (its log lines are what it exports)."""

import logging

import pytest

from dspy_turbo.testing import MetricSinkSuite
from dspy_turbo_logsink.sink import LogOptions, LogSink


@pytest.mark.parametrize("form", ["json", "kv"])
class TestLogSinkConformance(MetricSinkSuite):
    @pytest.fixture
    def sink(self, form):
        return LogSink.from_options(LogOptions(format=form, logger="dspy_turbo.events.conformance",
                                               levels={"default": "DEBUG"}, seed=1), None)

    @pytest.fixture
    def exported(self, caplog):
        caplog.set_level(logging.DEBUG, logger="dspy_turbo.events.conformance")
        return lambda sink: "\n".join(r.getMessage() for r in caplog.records if r.name == "dspy_turbo.events.conformance")
