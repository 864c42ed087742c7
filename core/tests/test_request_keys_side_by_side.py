"""What goes into the key of a request DSPy caches, side by side: DSPy's own ``Cache`` as
``dspy.cache`` and a Turbo installed, on the same calls with the same assertions.

A ``request_cache`` function's arguments are always identity (whatever their names); a
value DSPy cannot key is not cached (and keying it never touches or breaks it)."""

from __future__ import annotations

from unittest.mock import MagicMock

import dspy
import pydantic
import pytest
from dspy.clients.cache import Cache, request_cache

SIDES = ["dspy", "turbo"]


@pytest.fixture(params=SIDES)
def side(request, make_turbo):
    previous = dspy.cache
    turbo = None
    if request.param == "dspy":
        dspy.cache = Cache(enable_disk_cache=False, enable_memory_cache=True, disk_cache_dir=None)
    else:
        turbo = make_turbo().install()
    try:
        yield request.param
    finally:
        if turbo is not None:
            turbo.uninstall()
        dspy.cache = previous


def _counted():
    calls = []

    @request_cache()
    def fetch(url, **kwargs):
        calls.append((url, kwargs))
        return {"page": url, "as": repr(sorted(kwargs.items())), "n": len(calls)}

    return fetch, calls


@pytest.mark.parametrize("name", ["token", "password", "authorization", "api_token", "headers", "extra_headers"])
def test_arguments_named_like_secrets_are_part_of_the_key(side, name):
    fetch, calls = _counted()
    a = fetch(url="u", **{name: "A"})
    b = fetch(url="u", **{name: "B"})
    assert "'A'" in a["as"] and "'B'" in b["as"]  # B's own result, not A's
    assert fetch(url="u", **{name: "A"}) == a and len(calls) == 2


def test_a_header_dict_argument_is_identity(side):
    fetch, calls = _counted()
    a = fetch(url="u", headers={"Authorization": "Bearer A"})
    b = fetch(url="u", headers={"Authorization": "Bearer B"})
    assert a != b and len(calls) == 2


def test_api_key_is_ignored_as_dspy_ignores_it_by_default(side):
    fetch, calls = _counted()
    fetch(url="u", api_key="A")
    fetch(url="u", api_key="B")
    assert len(calls) == 1  # request_cache's default ignored_args_for_cache_key


class Opaque:
    def __init__(self, value):
        self.value = value


def test_a_request_holding_a_plain_object_is_not_cached(side):
    fetch, calls = _counted()
    assert fetch(url="u", thing=Opaque(1))["n"] == 1
    assert fetch(url="u", thing=Opaque(1))["n"] == 2  # run again: such a request is not cached
    assert fetch(url="u", thing=Opaque(2))["n"] == 3


def test_a_magicmock_in_a_request_is_left_alone(side):
    fetch, calls = _counted()
    mock = MagicMock()
    first = fetch(url="u", client=mock)  # used to recurse through model_dump() and raise RecursionError
    assert first["page"] == "u"
    assert mock.mock_calls == [] and not mock._mock_children  # no child mocks grown on the user's object


class Query(pydantic.BaseModel):
    text: str
    k: int = 3


def test_pydantic_models_are_keyed_by_their_fields(side):
    fetch, calls = _counted()
    fetch(url="u", query=Query(text="a"))
    fetch(url="u", query=Query(text="a"))
    fetch(url="u", query=Query(text="b"))
    assert len(calls) == 2


def _upper(text):
    return text.upper()


def _lower(text):
    return text.lower()


def test_functions_in_a_request_are_keyed_by_their_code(side):
    @request_cache()
    def transform(text, fn):
        return fn(text)

    assert transform(text="Ab", fn=_upper) == "AB"
    assert transform(text="Ab", fn=_lower) == "ab"
    assert transform(text="Ab", fn=_upper) == "AB"


def test_a_turbo_keeps_closures_over_different_values_apart(make_turbo):
    # DSPy keys a callable by its source: two closures of one factory share its entry there.
    make_turbo().install()

    @request_cache()
    def transform(text, fn):
        return fn(text)

    def suffix(s):
        return lambda text: text + s

    assert transform(text="a", fn=suffix("!")) == "a!"
    assert transform(text="a", fn=suffix("?")) == "a?"
