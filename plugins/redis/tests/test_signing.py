"""Signed entries on a shared Redis: whoever can write to it cannot make a process serve a
planted answer, nor a genuine one under another request's key (real Redis, DSPy programs)."""

from __future__ import annotations

import dspy
import pytest
import redis

import dspy_turbo
from dspy_turbo.cache.keys import KEY_VERSION

KEY = "redis-tier-test-signing-key-9876543210"


class _Recorder:
    def __init__(self):
        self.events = []

    @dspy_turbo.hookimpl
    def dspy_turbo_metric_event(self, event):
        self.events.append(event)


def _config(url, namespace, **cache):
    return {"namespace": namespace, "cache": {"tiers": [{"type": "memory"}, {"type": "redis", "url": url}], **cache}}


@pytest.fixture
def client(redis_url, namespace):
    c = redis.Redis.from_url(redis_url)
    yield c
    keys = list(c.scan_iter(match=f"*{namespace}*", count=1000))
    if keys:
        c.unlink(*keys)
    c.close()


def _entries(client, namespace) -> list[bytes]:
    return sorted(k for k in client.scan_iter(match=f"*{namespace}:v{KEY_VERSION}:*", count=1000))


@pytest.mark.parametrize("signing", [False, True])
def test_answers_swapped_between_keys_are_served_only_without_a_signing_key(redis_url, namespace, client, lm, signing):
    config = _config(redis_url, namespace, **({"signing_key": KEY} if signing else {}))
    program = dspy.Predict("question -> answer")
    questions = ["When does the museum open?", "How much is a ticket?"]
    with dspy_turbo.load(config):
        right = [program(question=q).answer for q in questions]
    first, second = _entries(client, namespace)
    a, b = client.get(first), client.get(second)
    client.set(first, b)  # each request's key now holds the other's genuine answer
    client.set(second, a)
    recorder = _Recorder()
    with dspy_turbo.load(config, plugins=[recorder]) as turbo:  # a new process: empty memory tier
        served = [program(question=q).answer for q in questions]
        assert turbo.flush_events(5)
    refused = [e for e in recorder.events if e.kind == "error" and e.reason == "corrupt"]
    if not signing:
        assert served == right[::-1] and refused == []  # the wrong answers, served
        return
    assert served == right and lm.engine.calls == 4  # both refused and asked again
    assert len(refused) == 2 and all("signature does not verify" in e.error for e in refused)
    assert all(KEY not in repr(e) for e in recorder.events)


def test_a_planted_unsigned_entry_is_a_miss_and_is_replaced(redis_url, namespace, client, lm):
    config = _config(redis_url, namespace, signing_key=KEY)
    program = dspy.Predict("question -> answer")
    with dspy_turbo.load(config):
        right = program(question="Is the pool heated?").answer
    (key,) = _entries(client, namespace)
    with dspy_turbo.load(_config(redis_url, "planter")) as planter:  # a well-formed entry, no signature
        planter.store("planter:v1:x", {"choices": [{"message": {"content": "[[ ## answer ## ]]\nNo."}}]})
    client.set(key, client.get(b"planter:v1:x"))
    client.delete(b"planter:v1:x")
    with dspy_turbo.load(config) as turbo:
        assert program(question="Is the pool heated?").answer == right
        assert turbo.stats()["errors"]["redis"] == 1 and lm.engine.calls == 2
    assert client.get(key).startswith(b"DS\x01")  # replaced by a signed entry


def test_processes_with_different_keys_do_not_serve_each_other(redis_url, namespace, client, lm):
    """A key rotation (or a misconfigured worker): what one key signed, the other refuses and
    deletes, so the shared tier does not serve mixed keys; it refills under the new key."""
    program = dspy.Predict("question -> answer")
    with dspy_turbo.load(_config(redis_url, namespace, signing_key=KEY)):
        old = program(question="Where is the exit?").answer
    with dspy_turbo.load(_config(redis_url, namespace, signing_key=KEY[::-1])) as turbo:
        assert program(question="Where is the exit?").answer == old  # the same answer, from the LM
        assert lm.engine.calls == 2 and turbo.stats()["errors"]["redis"] == 1
    with dspy_turbo.load(_config(redis_url, namespace, signing_key=KEY[::-1])) as turbo:
        assert program(question="Where is the exit?").answer == old
        assert lm.engine.calls == 2 and turbo.stats()["hits"] == {"redis": 1}
