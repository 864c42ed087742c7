"""The prometheus sink passes the SDK's metric sink conformance suite (its /metrics text is what it exports)."""

import pytest

from dspy_turbo.testing import MetricSinkSuite
from dspy_turbo_prometheus.sink import PrometheusOptions, PrometheusSink


class TestPrometheusSinkConformance(MetricSinkSuite):
    @pytest.fixture
    def sink(self):
        sink = PrometheusSink.from_options(PrometheusOptions(port=None), None)
        yield sink
        sink.close()

    @pytest.fixture
    def exported(self):
        return lambda sink: sink.text()
