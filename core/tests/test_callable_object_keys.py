"""A callable object in a request (an instance with ``__call__``, a mock), side by side.

DSPy keys a callable without ``__name__`` as ``<callable:lambda>``: two different embedders
with the same inputs share one entry, and the second gets the first one's vectors. DSPy
deep-copies every request before keying it, so the object a request holds is a copy that
cannot say which embedder made it: dspy-turbo does not cache such a call (an event says
why) and keeps caching what it can key (a function)."""

import dspy
import pytest

from dspy_turbo.events import bus as ev
from dspy_turbo.integration.dspy_cache import DSPyCache


class EmbedderA:
    def __call__(self, texts):
        return [[1.0, 0.0]] * len(texts)


class EmbedderB:
    def __call__(self, texts):
        return [[0.0, 1.0]] * len(texts)


def embed_c(texts):
    return [[0.5, 0.5]] * len(texts)


@pytest.fixture(params=["dspy", "turbo"])
def side(request, make_turbo, tmp_path):
    original = dspy.__dict__.get("cache")
    turbo = None
    if request.param == "dspy":
        dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True, disk_cache_dir=str(tmp_path))
        request.node.add_marker(pytest.mark.xfail(
            strict=True, reason="DSPy keys every callable object without __name__ as '<callable:lambda>'"))
    else:
        turbo = make_turbo().install()
    yield turbo
    if turbo is not None:
        turbo.uninstall()
    if not isinstance(dspy.__dict__.get("cache"), DSPyCache):
        dspy.cache = original


def test_two_callable_objects_never_share_an_entry(side):
    a = dspy.Embedder(EmbedderA())(["same text"]).tolist()
    b = dspy.Embedder(EmbedderB())(["same text"]).tolist()
    assert a == [[1.0, 0.0]]
    assert b == [[0.0, 1.0]]


def test_a_callable_object_is_not_cached_and_says_why(make_turbo):
    turbo = make_turbo().install()
    seen = []
    turbo.bus.add("test", seen.append)
    embedder = EmbedderA()
    dspy.Embedder(embedder)(["x"])
    skipped = [e for e in seen if e.kind == ev.SKIP_STORE]
    assert [e.reason for e in skipped] == ["unkeyable"]
    assert "EmbedderA" in skipped[0].error
    assert not [e for e in seen if e.kind == ev.STORE]
    turbo.uninstall()


def test_a_function_embedder_is_still_cached(make_turbo):
    turbo = make_turbo().install()
    calls = []

    def embed(texts):
        calls.append(texts)
        return embed_c(texts)

    first = dspy.Embedder(embed)(["x", "y"]).tolist()
    second = dspy.Embedder(embed)(["x", "y"]).tolist()
    assert first == second == [[0.5, 0.5], [0.5, 0.5]]
    assert len(calls) == 1
    turbo.uninstall()
