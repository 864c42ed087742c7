"""Conformance suites: one per component contract of the SDK (``dspy_turbo.plugin``).

A suite is a pytest class that tests the *contract*, not one implementation: subclass it
in your plugin's tests, provide the fixture that builds your component, and every rule of
the contract is checked against it::

    # tests/test_my_backend.py
    import pytest
    from dspy_turbo.testing import CacheBackendSuite

    class TestMyBackend(CacheBackendSuite):
        @pytest.fixture
        def backend(self, tmp_path):
            b = MyBackend(MyBackend.Options(path=str(tmp_path / "db")))
            yield b
            b.close()

The suites, the fixture each needs and the contract it checks:

- ``CacheBackendSuite`` (``backend``): ``dspy_turbo.plugin.backend``;
- ``SimilarityIndexSuite`` (``index``) and ``EmbedderSuite`` (``embedder``):
  ``dspy_turbo.plugin.similarity``;
- ``BatchStrategySuite`` (``strategy``, the class): ``dspy_turbo.plugin.batch``;
- ``MetricSinkSuite`` (``sink``): ``dspy_turbo.plugin.sink``;
- ``ModelSelectorSuite`` (``selector``): ``dspy_turbo.plugin.selector``;
- ``CoordinatorSuite`` (``coordinator``): ``dspy_turbo.plugin.coordination``.

Each test's docstring says the rule it checks; each suite's module lists its optional
fixtures.
"""

from .backend import CacheBackendSuite
from .batch import BatchStrategySuite
from .coordination import CoordinatorSuite
from .selector import ModelSelectorSuite
from .similarity import EmbedderSuite, SimilarityIndexSuite
from .sink import MetricSinkSuite, sample_event

__all__ = ["BatchStrategySuite", "CacheBackendSuite", "CoordinatorSuite", "EmbedderSuite", "MetricSinkSuite",
           "ModelSelectorSuite", "SimilarityIndexSuite", "sample_event"]
