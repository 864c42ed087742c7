"""The semantic index shared across processes through the redis tier: each Turbo keeps its
own FAISS replica and applies the others' changes from a Redis stream."""

import dspy
import pytest
import redis

# The index is shared through the redis tier.
pytestmark = pytest.mark.requires_plugin("redis")

QUESTION = "What is the capital city of France?"
PARAPHRASE = "What's the capital of France?"


def shared_config(semantic_config, redis_url):
    # sync_interval 0: every lookup first applies what the others appended (no timing in the test)
    return semantic_config(threshold=0.9, tiers=[{"type": "memory"}, {"type": "redis", "url": redis_url}], sync_interval=0)


def drop(redis_url, namespace):
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
    if keys:
        client.unlink(*keys)
    client.close()


def test_a_paraphrase_is_served_from_what_another_process_indexed(make_turbo, semantic_config, minilm, redis_url, lm):
    config = shared_config(semantic_config, redis_url)
    program = dspy.Predict("question -> answer")
    try:
        early = make_turbo(config)  # up before the question is answered: learns of it by syncing
        first = make_turbo(config).install()
        answer = program(question=QUESTION).answer
        first.uninstall()
        late = make_turbo(config)  # up after: catches up from the log when it starts
        assert len(late.semantic.index) == 1 and late.stats()["semantic"]["shared_index"]["applied"] == 1

        for turbo in (early, late):
            turbo.install()
            assert program(question=PARAPHRASE).answer == answer
            stats = turbo.stats()
            assert stats["hits"] == {"semantic": 1}, stats["hits"]
            turbo.uninstall()
        assert lm.engine.calls == 1

        first.invalidate()  # the namespace's entries and vectors go, in every replica
        late.semantic.replication.sync(force=True)
        assert len(late.semantic.index) == 0
    finally:
        drop(redis_url, config["namespace"])


def test_a_damaged_log_record_is_skipped_and_counted(make_turbo, semantic_config, minilm, redis_url):
    config = shared_config(semantic_config, redis_url)
    try:
        client = redis.Redis.from_url(redis_url)
        client.xadd(f"{config['namespace']}:log:semantic", {"d": b"\x80\x04 not json"})
        client.xadd(f"{config['namespace']}:log:semantic", {"d": b'{"op": "add", "scope": "s"}'})
        client.close()
        turbo = make_turbo(config)
        assert turbo.stats()["semantic"]["shared_index"]["bad_records"] == 2
        assert len(turbo.semantic.index) == 0
    finally:
        drop(redis_url, config["namespace"])


def test_without_redis_the_index_stays_local(make_turbo, semantic_config, minilm, unused_port, lm):
    config = semantic_config(threshold=0.9, tiers=[{"type": "memory"},
                                                   {"type": "redis", "url": f"redis://127.0.0.1:{unused_port}/0",
                                                    "timeout": "100ms"}])
    turbo = make_turbo(config).install()
    program = dspy.Predict("question -> answer")
    answer = program(question=QUESTION).answer
    assert program(question=PARAPHRASE).answer == answer  # the local replica still serves
    assert lm.engine.calls == 1
    assert turbo.stats()["semantic"]["shared_index"]["failed"] >= 1


def test_two_processes_share_the_index(semantic_config, redis_url, workers):
    config = shared_config(semantic_config, redis_url)
    try:
        first = workers.run(config, [QUESTION])
        second = workers.run(config, [PARAPHRASE])  # a new process: its replica starts from the log
        assert first["lm_calls"] == 1 and second["lm_calls"] == 0
        assert second["stats"]["hits"] == {"semantic": 1}
        assert second["answers"] == first["answers"]
    finally:
        drop(redis_url, config["namespace"])
