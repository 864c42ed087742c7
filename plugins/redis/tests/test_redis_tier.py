"""The redis tier (dspy-turbo-redis) against real servers: conformance, sharing across
processes, failures, security, invalidation. The Cluster test is in test_redis_cluster.py."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import time

import dspy
import pytest
import redis

import dspy_turbo
from dspy_turbo.cache.entry import Entry
from dspy_turbo.cache.keys import KEY_VERSION
from dspy_turbo.testing import CacheBackendSuite


def _own_keys(url: str, prefix: str) -> list[bytes]:
    client = redis.Redis.from_url(url)
    try:
        return list(client.scan_iter(match=prefix + "*", count=1000))
    finally:
        client.close()


class TestRedisBackendConformance(CacheBackendSuite):
    @pytest.fixture
    def backend(self, own_backend):
        return own_backend("conf")  # this test's own keys on the shared server (conftest.py)

    @pytest.fixture
    def corrupt(self, redis_url):
        def damage(backend, key):
            client = redis.Redis.from_url(redis_url)
            client.set(backend.prefix + key, b"DT\x01{truncated")
            client.close()
        return damage


def tiers(redis_url, namespace, directory=None, **redis_options):
    config = {"namespace": namespace, "cache": {"tiers": [{"type": "memory"}]}}
    if directory is not None:
        config["cache"]["tiers"].append({"type": "file", "directory": str(directory)})
    config["cache"]["tiers"].insert(1, {"type": "redis", "url": redis_url, **redis_options})
    return config


@pytest.mark.requires_plugin("file")
def test_two_processes_with_separate_disks_share_entries_through_redis(redis_url, namespace, cleanup, tmp_path, workers):
    cleanup(namespace + ":")
    questions = [f"Which river runs through city {i}?" for i in range(15)]
    first = workers.run(tiers(redis_url, namespace, tmp_path / "disk-a"), questions)
    second = workers.run(tiers(redis_url, namespace, tmp_path / "disk-b"), questions)
    assert first["lm_calls"] == 15
    assert second["lm_calls"] == 0
    assert second["stats"]["hits"] == {"redis": 15}
    assert second["answers"] == first["answers"]


def test_four_processes_asking_the_same_new_questions_make_one_call_each(redis_url, namespace, cleanup, tmp_path, workers):
    cleanup(namespace + ":")
    questions = [f"Summarise report number {i}." for i in range(50)]
    start = tmp_path / "go"
    # A generous timeout: 32 threads in 4 processes on a 2-core machine must not turn a slow
    # scheduler into Redis errors (an error means "call the LM yourself", by design).
    config = tiers(redis_url, namespace, timeout="2s")
    procs = [workers.start(config, questions, threads=8, latency=0.2, start_file=str(start)) for _ in range(4)]
    time.sleep(3)  # let every worker import DSPy and wait at the start line
    start.touch()
    results = [workers.result(p) for p in procs]
    assert sum(r["lm_calls"] for r in results) == 50, [(r["lm_calls"], r["stats"]["errors"], r["stats"]["coalesced"], r["stats"]["hits"]) for r in results]
    assert all(r["answers"] == results[0]["answers"] for r in results)
    assert sum(r["stats"]["coalesced"] for r in results) + sum(r["stats"]["hits_total"] for r in results) == 150
    spent = sum(r["stats"]["tokens"]["spent"] for r in results)
    saved = sum(r["stats"]["tokens"]["saved"] for r in results)
    assert spent > 0 and saved == 3 * spent  # each of the other three processes saved what the one call spent


def test_redis_killed_mid_run_then_restarted(redis_server, namespace, lm):
    server = redis_server()
    config = tiers(server.url, namespace, timeout="200ms")
    config["cache"]["breaker"] = {"failures": 2, "cooldown": "500ms"}
    turbo = dspy_turbo.load(config).install()
    program = dspy.Predict("question -> answer")
    reference = dspy.Predict("question -> answer")
    try:
        questions = [f"What is the capital of region {i}?" for i in range(200)]
        answers = []
        for i, q in enumerate(questions):
            if i == 60:
                server.stop()  # SIGKILL mid-run
            answers.append(program(question=q).answer)
        assert lm.engine.calls == 200
        stats = turbo.stats()
        assert stats["errors"]["redis"] >= 2 and stats["tiers"]["redis"]["breaker"] == "open"
        turbo.uninstall()
        with dspy.context(lm=dspy_turbo.engines.offline.offline_lm("openai/gpt-4o-mini")):
            assert answers == [reference(question=q).answer for q in questions]  # every answer is right
        turbo.install()

        server.start()  # same port, empty: hits resume once the breaker lets a trial through
        time.sleep(0.6)
        fresh = [f"What is the population of town {i}?" for i in range(5)]
        for q in fresh:
            program(question=q)
        turbo.cache.tiers[0].backend.clear()  # forget the memory tier: the next reads must come from Redis
        before = turbo.stats()["hits"].get("redis", 0)
        for q in fresh:
            program(question=q)
        assert turbo.stats()["hits"].get("redis", 0) - before == 5
        assert turbo.stats()["tiers"]["redis"]["breaker"] == "closed"
    finally:
        turbo.close()


def test_redis_down_at_start_the_program_runs_on_the_other_tiers(namespace, unused_port, lm):
    turbo = dspy_turbo.load(tiers(f"redis://127.0.0.1:{unused_port}/0", namespace, timeout="100ms")).install()
    try:
        program = dspy.Predict("question -> answer")
        answers = [program(question=f"q{i}").answer for i in range(10)]
        assert all(answers) and lm.engine.calls == 10
        assert turbo.stats()["errors"]["redis"] >= 1
    finally:
        turbo.close()


def test_slow_redis_is_cut_off_at_the_timeout(redis_server, namespace, lm):
    server = redis_server()
    turbo = dspy_turbo.load(tiers(server.url, namespace, timeout="100ms")).install()
    program = dspy.Predict("question -> answer")
    try:
        program(question="warm the connection pool")
        blocker = threading.Thread(target=lambda: redis.Redis(port=server.port).execute_command("DEBUG", "SLEEP", "3"))
        blocker.start()
        time.sleep(0.2)
        started = time.monotonic()
        assert program(question="asked while Redis sleeps").answer
        waited = time.monotonic() - started
        blocker.join()
        # a lookup and a store, each cut off at 100 ms: far from the 3 s Redis is stuck for
        assert waited < 1.5
        assert turbo.stats()["errors"]["redis"] >= 1
    finally:
        turbo.close()


class _Exploit:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_planted_pickle_is_a_counted_miss_and_never_runs(redis_url, namespace, cleanup, tmp_path, lm):
    cleanup(namespace + ":")
    marker = tmp_path / "pwned"
    turbo = dspy_turbo.load(tiers(redis_url, namespace)).install()
    program = dspy.Predict("question -> answer")
    try:
        program(question="What is stored here?")
        keys = [k for k in _own_keys(redis_url, namespace + f":v{KEY_VERSION}:")]
        assert len(keys) == 1
        redis.Redis.from_url(redis_url).set(keys[0], pickle.dumps(_Exploit(marker)))
        turbo.cache.tiers[0].backend.clear()  # so the next read goes to Redis
        assert program(question="What is stored here?").answer
        assert not marker.exists()
        stats = turbo.stats()
        assert stats["errors"]["redis"] == 1 and lm.engine.calls == 2
        value = redis.Redis.from_url(redis_url).get(keys[0])
        assert value is not None and value.startswith(b"DT")  # the bad value was replaced by a real entry
    finally:
        turbo.close()


def test_no_secret_in_repr_check_or_events(redis_server, namespace, tmp_path, monkeypatch, lm):
    server = redis_server(None, "--requirepass", "right-password")
    secret = "s3cret-Pa55word"
    monkeypatch.setenv("TEST_REDIS_URL", f"redis://:{secret}@127.0.0.1:{server.port}/0")
    path = tmp_path / "turbo.yaml"
    path.write_text(f"namespace: {namespace}\ncache:\n  tiers:\n    - type: memory\n    - type: redis\n      url: ${{TEST_REDIS_URL}}\n")
    done = subprocess.run([sys.executable, "-m", "dspy_turbo.cli", "check", str(path)], capture_output=True, text=True)
    assert done.returncode == 0 and secret not in done.stdout + done.stderr
    events = []
    turbo = dspy_turbo.load(path, plugins=[_Recorder(events)]).install()
    try:
        dspy.Predict("question -> answer")(question="with a wrong password")
        backend = turbo.cache.tiers[1].backend
        assert secret not in repr(backend) and secret not in repr(backend.options)
        assert turbo.flush_events(5), "event hooks run on their own thread: wait for them"
        errors = [e for e in events if e.kind == "error"]
        assert errors, "the wrong password is an error event"
        assert all(secret not in repr(e) for e in events)
    finally:
        turbo.close()


class _Recorder:
    def __init__(self, events):
        self.events = events

    @dspy_turbo.hookimpl
    def dspy_turbo_metric_event(self, event):
        self.events.append(event)


def test_invalidate_by_tag_and_the_clear_command(redis_url, namespace, cleanup, tmp_path, lm):
    cleanup(namespace + ":")
    config = tiers(redis_url, namespace)
    turbo = dspy_turbo.load(config).install()
    program = dspy.Predict("question -> answer")
    try:
        with turbo.tagged("faq"):
            program(question="How do I reset my password?")
            program(question="Where is my invoice?")
        program(question="Untagged question")
        assert turbo.invalidate(tag="faq") == {"memory": 2, "redis": 2}
        assert len(_own_keys(redis_url, namespace + f":v{KEY_VERSION}:")) == 1
    finally:
        turbo.close()
    path = tmp_path / "turbo.yaml"
    import yaml

    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "dspy_turbo.cli", "clear", "--config", str(path), "--tier", "redis"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"redis: removed 1 entries of namespace '{namespace}'" in done.stdout
    assert _own_keys(redis_url, namespace + f":v{KEY_VERSION}:") == []


def test_coordinator_leases_and_buckets_are_shared(redis_url, namespace, cleanup):
    cleanup(namespace + ":")
    a = dspy_turbo.load(tiers(redis_url, namespace))
    b = dspy_turbo.load(tiers(redis_url, namespace))
    try:
        assert a.coordinator.shared and b.coordinator.shared
        token = a.coordinator.try_lease("job", ttl=0.5)
        assert token and b.coordinator.try_lease("job", ttl=0.5) is None
        b.coordinator.release("job", "not-the-holder")
        assert b.coordinator.try_lease("job", ttl=0.5) is None
        time.sleep(0.6)  # a crashed holder's lease expires
        assert b.coordinator.try_lease("job", ttl=5) is not None
        # one bucket for both: 3 tokens, refilled at 1/s
        taken = [c.coordinator.take("rpm", 1, 1.0, 3.0) for c in (a, b, a)]
        assert taken == [0.0, 0.0, 0.0]
        wait = b.coordinator.take("rpm", 1, 1.0, 3.0)
        assert 0.5 < wait <= 1.0
    finally:
        a.close()
        b.close()


def test_get_many_is_one_round_trip_and_decodes(redis_url, namespace, cleanup):
    cleanup(namespace + ":")
    turbo = dspy_turbo.load(tiers(redis_url, namespace))
    try:
        keys = [f"{namespace}:v1:k{i}" for i in range(100)]
        for i, key in enumerate(keys[:60]):
            turbo.cache.tiers[1].backend.set(key, Entry.create({"i": i}))
        found = turbo.cache.get_many(keys)
        assert len(found) == 60 and found[keys[7]].value == {"i": 7}
        stats = turbo.stats()
        assert stats["hits"] == {"redis": 60} and stats["misses"] == 40
    finally:
        turbo.close()


def test_a_busy_pool_waits_for_a_connection_instead_of_failing(own_backend):
    backend = own_backend("pool", max_connections=4)
    backend.set("ns:v1:k", Entry.create({"v": 1}))
    errors = []

    def read():
        try:
            for _ in range(20):
                assert backend.get("ns:v1:k").value == {"v": 1}
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_tag_index_expires_with_its_entries(redis_url, own_backend):
    backend = own_backend("tagttl")
    prefix = backend.prefix
    backend.set("ns:v1:a", Entry.create({"v": 1}, tags=("faq",)), ttl=60)
    client = redis.Redis.from_url(redis_url)
    assert 0 < client.pttl(f"{prefix}ns:tag:faq") <= 60_000
    backend.set("ns:v1:b", Entry.create({"v": 2}, tags=("faq",)), ttl=600)
    assert 60_000 < client.pttl(f"{prefix}ns:tag:faq") <= 600_000  # as long as its longest entry
    client.close()


def test_a_startup_node_with_credentials_is_refused_without_echoing_them():
    with pytest.raises(dspy_turbo.ConfigError) as info:
        dspy_turbo.load({"cache": {"tiers": [{"type": "redis", "startup_nodes": ["redis://:hunter2@10.0.0.1:7000"]}]}})
    assert "hunter2" not in str(info.value) and "startup node" in str(info.value)


def test_the_clear_command_says_what_it_removed_per_tier(redis_url, namespace, cleanup, tmp_path, lm):
    """`dspy-turbo clear`: the shared tier's count, and for the memory tier (empty in the
    command's own process) where its entries are and how they go, not "removed 0"."""
    cleanup(namespace + ":")
    config = tiers(redis_url, namespace)
    turbo = dspy_turbo.load(config).install()
    try:
        dspy.Predict("question -> answer")(question="How do I reset my password?")
    finally:
        turbo.close()
    import yaml

    path = tmp_path / "turbo.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "dspy_turbo.cli", "clear", "--config", str(path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "memory: in each program's own memory, not here; running programs drop them within cache.sync_interval "
        "(told through the shared tier)",
        f"redis: removed 1 entries of namespace '{namespace}'"]


def _planted(value: bytes) -> bytes:
    """Entry bytes written by hand around ``value`` (a plain-JSON value as its bytes)."""
    return b'DT\x03["json",' + value + b',1.0,null,{},null,null,[]]'


def test_a_bulk_read_answers_planted_deep_and_truncated_entries_as_corrupt_misses_and_deletes_them(own_backend):
    backend = own_backend("bulk-planted")
    reported = []
    backend.on_corrupt = lambda key, error: reported.append((key, str(error)))
    raw = backend._client()
    good = Entry.create({"answer": ["Paris", {"since": 987}]})
    planted = {
        "ns:v1:lists": _planted(b"[" * 65 + b"]" * 65),  # one level past the bound
        "ns:v1:dicts": _planted(b'{"a":' * 65 + b"1" + b"}" * 65),
        "ns:v1:deeper": _planted(b"[" * 5000 + b"]" * 5000),  # past msgspec's own recursion limit
        "ns:v1:truncated": good.to_bytes()[:-7],
        "ns:v1:pickle": pickle.dumps({"answer": "planted"}),
    }
    for key, blob in planted.items():
        raw.set(backend.prefix + key, blob)
    # At the bound, and brackets inside strings: read back as they are.
    at_bound = _planted(b"[" * 61 + b"]" * 61)
    in_strings = _planted(b'{"text":"' + b"[{" * 200 + b'"}')
    raw.set(backend.prefix + "ns:v1:at-bound", at_bound)
    raw.set(backend.prefix + "ns:v1:in-strings", in_strings)
    backend.set("ns:v1:good", good)

    found = backend.get_many(["ns:v1:good", "ns:v1:at-bound", "ns:v1:in-strings", *planted])
    assert sorted(found) == ["ns:v1:at-bound", "ns:v1:good", "ns:v1:in-strings"]
    assert found["ns:v1:good"].value == {"answer": ["Paris", {"since": 987}]}
    assert found["ns:v1:in-strings"].value == {"text": "[{" * 200}
    nested = found["ns:v1:at-bound"].value
    for _ in range(60):
        nested = nested[0]
    assert nested == []
    assert sorted(key for key, _ in reported) == sorted(planted)
    assert all("deeper" in error for key, error in reported if key in ("ns:v1:lists", "ns:v1:dicts"))
    assert raw.mget([backend.prefix + key for key in planted]) == [None] * len(planted), "deleted"


def test_a_bulk_read_of_current_entries_drops_only_the_bad_ones(own_backend):
    """Every value in the current format, so they are parsed together (``Entry.from_many``):
    one past the depth bound or with an unknown tag is still a corrupt miss, deleted, and
    the keys around it read as they are; a key asked twice and a missing one too."""
    backend = own_backend("bulk-current")
    reported = []
    backend.on_corrupt = lambda key, error: reported.append((key, str(error)))
    raw = backend._client()
    bad = {"ns:v1:deep": _planted(b"[" * 65 + b"]" * 65),
           "ns:v1:tag": b'DT\x03["pickle","x",1.0,null,{},null,null,[]]'}
    for key, blob in bad.items():
        raw.set(backend.prefix + key, blob)
    for i in range(20):
        backend.set(f"ns:v1:good{i}", Entry.create({"answer": i}))
    keys = [f"ns:v1:good{i}" for i in range(10)] + ["ns:v1:deep", "ns:v1:good3", "ns:v1:missing", "ns:v1:tag"] + \
        [f"ns:v1:good{i}" for i in range(10, 20)]
    found = backend.get_many(keys)
    assert sorted(found) == sorted(f"ns:v1:good{i}" for i in range(20))
    assert all(found[f"ns:v1:good{i}"].value == {"answer": i} for i in range(20))
    assert sorted(key for key, _ in reported) == sorted(bad)
    assert "deeper" in dict(reported)["ns:v1:deep"] and "unknown value tag" in dict(reported)["ns:v1:tag"]
    assert raw.mget([backend.prefix + key for key in bad]) == [None, None], "deleted"
