"""The example numpy index: the core's conformance suite, then what this index adds (a bound).

The module name is unique on purpose: the repository runs every example's tests in one
pytest session, without ``__init__.py`` files.
"""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from dspy_turbo.testing import SimilarityIndexSuite
from dspy_turbo_numpy_index import NumpyIndex


class TestNumpyIndexConformance(SimilarityIndexSuite):
    @pytest.fixture
    def index(self):
        index = NumpyIndex.from_options(NumpyIndex.Options(), None)
        yield index
        index.close()


def _unit(rows):
    rows = np.asarray(rows, dtype="float32")
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def test_max_entries_removes_the_oldest_first():
    index = NumpyIndex(NumpyIndex.Options(max_entries=3))
    vectors = _unit(np.random.default_rng(1).normal(size=(5, 8)))
    for i in range(5):
        index.add("a" if i % 2 else "b", i, vectors[i], {"i": i})
    assert len(index) == 3
    held = {item for scope in ("a", "b") for item, _, _ in index.search(scope, vectors[0], 10)}
    assert held == {2, 3, 4}


def test_unknown_options_are_refused():
    with pytest.raises(ValidationError):
        NumpyIndex.Options(max_entrys=3)
