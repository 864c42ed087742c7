"""A Redis ``prefix`` and the namespace never run together: prefix ``app`` with namespace
``x`` is not namespace ``appx``. The shared Redis server; every key this test makes is
removed afterwards."""

from __future__ import annotations

import uuid

import pytest
import redis

import dspy_turbo

REQUEST = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "capital of France?"}],
           "_fn_identifier": "dspy.clients.lm.litellm_completion"}


@pytest.fixture
def tag(redis_url):
    tag = f"p{uuid.uuid4().hex[:10]}"
    made = []
    yield tag, made
    for turbo in made:
        turbo.close()
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{tag}*", count=1000))
    if keys:
        client.unlink(*keys)
    client.close()


def _turbo(redis_url, made, namespace, prefix):
    turbo = dspy_turbo.load({"namespace": namespace, "cache": {"tiers": [{"type": "redis", "url": redis_url,
                                                                         "prefix": prefix}]}})
    made.append(turbo)
    return turbo


def test_prefix_and_namespace_are_separate_key_spaces(redis_url, tag):
    tag, made = tag
    prefixed = _turbo(redis_url, made, "x", tag)           # prefix "p…", namespace "x"
    joined = _turbo(redis_url, made, f"{tag}x", "")        # no prefix, namespace "p…x"
    prefixed.store(prefixed.key(REQUEST), {"answer": "Paris"})
    joined.store(joined.key(REQUEST), {"answer": "Lyon"})
    assert prefixed.lookup(prefixed.key(REQUEST)) == {"answer": "Paris"}
    assert joined.lookup(joined.key(REQUEST)) == {"answer": "Lyon"}  # each its own answer, never the other's
    client = redis.Redis.from_url(redis_url)
    try:
        assert sorted(k.decode().rsplit(":", 1)[0] for k in client.scan_iter(match=f"{tag}*")) == \
            [f"{tag}:x:v2", f"{tag}x:v2"]
    finally:
        client.close()


def test_a_trailing_colon_names_the_same_prefix(redis_url, tag):
    tag, made = tag
    plain, colon = _turbo(redis_url, made, "x", tag), _turbo(redis_url, made, "x", f"{tag}:")
    plain.store(plain.key(REQUEST), {"answer": "Paris"})
    assert colon.lookup(colon.key(REQUEST)) == {"answer": "Paris"}
    plain.invalidate()
    assert colon.lookup(colon.key(REQUEST)) is None
