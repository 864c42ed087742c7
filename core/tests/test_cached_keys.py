"""``@dspy_turbo.cached``: what a call's key is made of. Two calls that can return different
results never share an entry; an argument that cannot be keyed runs the call uncached."""

from __future__ import annotations

import asyncio
import functools
import threading

import numpy as np
import pytest

import dspy_turbo


@pytest.fixture
def turbo(make_turbo):
    turbo = make_turbo()
    events = []
    turbo.bus.add("test-events", events.append)
    turbo.events = events
    return turbo


def _skipped(turbo):
    return [e for e in turbo.events if e.kind == "skip_store" and e.reason == "unkeyable"]


def test_closures_made_by_one_factory_are_different_functions(turbo):
    def make(greeting):
        @turbo.cached
        def greet(name):
            return f"{greeting}, {name}"
        return greet

    hello, bonjour = make("hello"), make("bonjour")
    assert hello("ann") == "hello, ann"
    assert bonjour("ann") == "bonjour, ann"  # same qualified name, another function
    assert make("hello")("ann") == "hello, ann"


def test_lambdas_are_told_apart_by_code_and_defaults(turbo):
    double = turbo.cached(lambda x: x * 2)
    square = turbo.cached(lambda x: x ** 2)
    assert (double(3), square(3)) == (6, 9)
    add_one = turbo.cached(lambda x, k=1: x + k)
    add_two = turbo.cached(lambda x, k=2: x + k)
    assert (add_one(3), add_two(3)) == (4, 5)


class Scaler:
    def __init__(self, factor):
        self.factor = factor
        self.lock = threading.Lock()  # state a key cannot hold: never read

    def scale(self, x):
        return x * self.factor


def _times(x, factor):
    return x * factor


@pytest.mark.parametrize("pair", [
    lambda: (lambda x: x + 1, lambda x: x + 100),                          # lambdas
    lambda: (lambda x, k=1: x + k, lambda x, k=100: x + k),                  # defaults
    lambda: (functools.partial(_times, factor=2), functools.partial(_times, factor=3)),
    lambda: (Scaler(2).scale, Scaler(3).scale),                             # bound methods of two instances
    lambda: ((lambda f: lambda x: x * f)(2), (lambda f: lambda x: x * f)(3)),  # closures over different values
], ids=["lambdas", "defaults", "partials", "bound-methods", "closures"])
def test_callables_passed_as_arguments_are_keyed_by_what_they_do(turbo, pair):
    calls = []

    @turbo.cached
    def apply(fn, x):
        calls.append(x)
        return fn(x)

    first, second = pair()
    assert apply(first, 10) == first(10)
    assert apply(second, 10) == second(10)  # not the first one's result
    assert apply(first, 10) == first(10) and len(calls) == 2  # the same callable again: a hit


class Index:
    def __init__(self, size):
        self.lock = threading.Lock()
        self.vectors = np.zeros((size, 8))
        self.calls = 0

    @dspy_turbo.cached
    def search(self, query, k=2):
        self.calls += 1
        return [f"{query}-{i}" for i in range(k)]


def test_a_method_counts_its_instance_by_identity_never_by_its_state(turbo):
    turbo.install()
    try:
        a, b = Index(1000), Index(1000)
        assert a.search("q") == ["q-0", "q-1"]  # a lock in self used to raise TypeError here
        assert a.search("q") == ["q-0", "q-1"] and a.calls == 1
        assert b.search("q") == ["q-0", "q-1"] and b.calls == 1  # another instance: its own entry
        a.vectors[0, 0] = 1.0  # state is not part of the key (document: key= says what is)
        assert a.search("q") == ["q-0", "q-1"] and a.calls == 1
    finally:
        turbo.uninstall()


def test_an_explicit_key_says_what_identifies_a_call(turbo):
    calls = []

    class Client:
        def __init__(self, model):
            self.model = model

    @turbo.cached(key=lambda client, q: (client.model, q))
    def ask(client, q):
        calls.append(q)
        return f"{client.model}:{q}"

    assert ask(Client("m1"), "q") == "m1:q"
    assert ask(Client("m1"), "q") == "m1:q" and len(calls) == 1  # another instance, same model: a hit
    assert ask(Client("m2"), "q") == "m2:q" and len(calls) == 2


def test_a_closure_over_an_object_counts_it_by_identity_unless_a_key_says_otherwise(turbo):
    class Index:
        def __init__(self, corpus):
            self.corpus = corpus

    calls = []

    def make(index, **options):
        @turbo.cached(**options)
        def search(corpus_id, q):
            calls.append(q)
            return f"{index.corpus}:{q}"
        return search

    a, b = Index("A"), Index("B")
    assert make(a)("a", "q") == "A:q" and make(b)("a", "q") == "B:q"  # the same corpus_id: still apart
    assert make(a)("a", "q") == "A:q" and len(calls) == 2              # the same object again: a hit
    by_key = {"key": lambda corpus_id, q: (corpus_id, q)}
    assert make(Index("A"), **by_key)("A", "q") == "A:q"
    assert make(Index("A"), **by_key)("A", "q") == "A:q" and len(calls) == 3  # a new instance: the key says it is the same


def test_an_argument_that_cannot_be_keyed_runs_uncached_with_an_event(turbo):
    calls = []

    class Connection:
        pass

    @turbo.cached
    def fetch(url, conn):
        calls.append(url)
        return f"page {url}"

    conn = Connection()
    assert fetch("a", conn) == fetch("a", conn) == "page a"
    assert calls == ["a", "a"]  # no entry, never an exception
    skipped = _skipped(turbo)
    assert len(skipped) == 2
    assert "argument 'conn'" in skipped[0].error and "Connection" in skipped[0].error
    assert "ignore=['conn']" in skipped[0].error
    assert turbo.stats()["skipped_stores"]["unkeyable"] == 2


def test_a_key_function_that_fails_runs_the_call_uncached(turbo):
    @turbo.cached(key=lambda q: 1 / 0)
    def f(q):
        return q.upper()

    assert f("x") == "X"
    assert "ZeroDivisionError" in _skipped(turbo)[0].error


def test_ignored_arguments_may_be_anything(turbo):
    calls = []

    @turbo.cached(ignore=["conn"])
    def fetch(url, conn):
        calls.append(url)
        return f"page {url}"

    assert fetch("a", threading.Lock()) == fetch("a", threading.Lock()) == "page a"
    assert calls == ["a"] and not _skipped(turbo)


def test_arguments_named_like_secrets_are_identity(turbo):
    @turbo.cached
    def fetch(url, token=None, password=None, headers=None):
        return f"{url} as {token}/{password}/{headers}"

    assert fetch("u", token="A") == "u as A/None/None"
    assert fetch("u", token="B") == "u as B/None/None"
    assert fetch("u", password="B") == "u as None/B/None"
    assert fetch("u", headers={"Authorization": "A"}) != fetch("u", headers={"Authorization": "B"})


async def test_async_functions_follow_the_same_rules(turbo):
    def make(greeting):
        @turbo.cached
        async def greet(name):
            await asyncio.sleep(0)
            return f"{greeting}, {name}"
        return greet

    assert await make("hello")("ann") == "hello, ann"
    assert await make("bonjour")("ann") == "bonjour, ann"

    @turbo.cached
    async def fetch(url, lock):
        return url

    assert await fetch("u", threading.Lock()) == "u"
    assert _skipped(turbo)
