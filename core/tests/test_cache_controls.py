"""Cache controls through real DSPy programs: scopes (bypass, refresh, read_only, caching),
per-call controls in DSPy's own ``cache`` argument, ttl, last_key/explain_key, and the
record/replay modes. Where DSPy has the behaviour (``cache=False`` per call), plain DSPy and
dspy-turbo run the same calls with the same assertions."""

import asyncio
import time

import dspy
import pytest

import dspy_turbo
from dspy_turbo.engines.offline import offline_lm

# The Turbo side has a file tier, as DSPy has a disk cache.
pytestmark = pytest.mark.requires_plugin("file")


@pytest.fixture(params=["dspy", "turbo"])
def side(request, tmp_path, make_turbo):
    """Plain DSPy (its own Cache, memory and disk) or dspy-turbo installed (memory and file tiers)."""
    original = dspy.__dict__.get("cache")
    turbo = None
    if request.param == "dspy":
        dspy.configure_cache(enable_disk_cache=True, enable_memory_cache=True, disk_cache_dir=str(tmp_path / "d"))
    else:
        turbo = make_turbo({"cache": {"tiers": [{"type": "memory"}, {"type": "file", "directory": str(tmp_path / "t")}]}})
        turbo.install()
    yield turbo  # None: plain DSPy
    if turbo is not None:
        turbo.uninstall()
    else:
        dspy.cache.disk_cache.close()
    if original is None:
        dspy.__dict__.pop("cache", None)
    else:
        dspy.cache = original


def _calls(lm):
    return lm.engine.calls


# -- DSPy's own per-call switch, side by side ---------------------------------------------------


def test_bypass_block_is_dspy_cache_false_side_by_side(side, make_turbo, lm):
    """The same program and assertions: plain DSPy passing ``cache=False`` to each call, and
    dspy-turbo with the calls inside ``with turbo.bypass():`` (and with ``cache=False`` too)."""
    import contextlib

    turbo = side
    qa = dspy.Predict("question -> answer")

    def uncached(question, how):
        if how == "per-call":
            return qa(question=question, config={"cache": False})
        with turbo.bypass() if turbo is not None else contextlib.nullcontext():
            return qa(question=question, config={} if turbo is not None else {"cache": False})

    first = qa(question="What is the capital of France?")
    assert _calls(lm) == 1
    for n, how in enumerate(["per-call", "block"] if turbo is not None else ["per-call", "per-call"]):
        assert uncached("What is the capital of France?", how).answer == first.answer  # no read
        uncached(f"Never cached {n}?", how)  # no write
        qa(question=f"Never cached {n}?")
        assert _calls(lm) == 4 + 3 * n
        qa(question="What is the capital of France?")  # what was cached before is still there
        assert _calls(lm) == 4 + 3 * n


def test_bypass_makes_every_concurrent_call(make_turbo, run_threads):
    """Not coalesced: each caller in the block asked for an answer of its own (as cache=False)."""
    slow = offline_lm("openai/gpt-4o-mini", latency=0.2)
    turbo = make_turbo().install()
    qa = dspy.Predict("question -> answer")

    def ask():
        with dspy.context(lm=slow, adapter=None), turbo.bypass():
            qa(question="the same question")

    run_threads(ask, 4)
    assert _calls(slow) == 4


def test_refresh_replaces_the_cached_answer(make_turbo, lm):
    turbo = make_turbo().install()
    qa = dspy.Predict("question -> answer")
    old = qa(question="What is the capital of France?").answer
    lm.engine.answers["capital of France"] = {"answer": "Paris (refreshed)"}
    assert qa(question="What is the capital of France?").answer == old  # still the cached one
    with turbo.refresh():
        assert qa(question="What is the capital of France?").answer == "Paris (refreshed)"
    assert _calls(lm) == 2
    assert qa(question="What is the capital of France?").answer == "Paris (refreshed)"  # written
    assert _calls(lm) == 2


def test_read_only_serves_hits_and_writes_nothing(make_turbo, lm):
    turbo = make_turbo().install()
    qa = dspy.Predict("question -> answer")
    qa(question="cached before")
    with turbo.read_only():
        qa(question="cached before")
        assert _calls(lm) == 1  # a hit
        qa(question="new inside")
        assert _calls(lm) == 2
    qa(question="new inside")
    assert _calls(lm) == 3  # it was not stored
    assert turbo.stats()["hit_rate"] > 0


def test_scopes_nest_innermost_wins(make_turbo, lm):
    turbo = make_turbo().install()
    qa = dspy.Predict("question -> answer")
    with turbo.read_only():
        with turbo.refresh():
            qa(question="written by the inner refresh")
        qa(question="not written")
    qa(question="written by the inner refresh")
    assert _calls(lm) == 2
    qa(question="not written")
    assert _calls(lm) == 3


def test_a_scope_reaches_asyncio_tasks_and_dspy_parallel(make_turbo, lm):
    turbo = make_turbo().install()
    qa = dspy.Predict("question -> answer")
    qa(question="q1")
    qa(question="q2")
    assert _calls(lm) == 2

    async def gathered():
        with turbo.bypass():
            await asyncio.gather(*(asyncio.create_task(qa.acall(question=q)) for q in ("q1", "q2")))

    asyncio.run(gathered())
    assert _calls(lm) == 4
    with turbo.bypass():
        dspy.Parallel(num_threads=2)([(qa, {"question": q}) for q in ("q1", "q2")])
    assert _calls(lm) == 6
    qa(question="q1")
    assert _calls(lm) == 6  # outside: hits again


# -- per-call controls through DSPy's cache argument (LiteLLM's names) --------------------------


def test_per_call_controls_through_predict_config(make_turbo, lm):
    make_turbo().install()
    qa = dspy.Predict("question -> answer")
    qa(question="q")
    qa(question="q", config={"cache": {"no-cache": True}})  # refresh
    assert _calls(lm) == 2
    qa(question="r", config={"cache": {"no-store": True}})
    qa(question="r")
    assert _calls(lm) == 4
    qa(question="q", config={"cache": {"no-cache": True, "no-store": True}})
    assert _calls(lm) == 5
    qa(question="q")
    assert _calls(lm) == 5
    # An LM's own default takes the same dict
    lm_read_only = offline_lm("openai/gpt-4o-mini", cache={"no-store": True})
    with dspy.context(lm=lm_read_only):
        qa(question="s")
        qa(question="s")
    assert _calls(lm_read_only) == 2


def test_per_call_controls_leave_the_request_and_key_alone(make_turbo, http_lm, openai_server):
    """DSPy keeps ``cache`` out of what it sends and of the cache key."""
    turbo = make_turbo().install()
    qa = dspy.Predict("question -> answer")
    qa(question="q", config={"cache": {"no-store": True, "ttl": "1h"}})
    controlled = turbo.last_key()
    qa(question="q")
    assert turbo.last_key() == controlled
    assert openai_server.calls == 2
    for body in openai_server.bodies:
        assert "cache" not in body and "no-store" not in str(body) and "ttl" not in body


def test_per_call_ttl(make_turbo, lm):
    turbo = make_turbo().install()
    qa = dspy.Predict("question -> answer")
    qa(question="short-lived", config={"cache": {"ttl": "2s"}})
    entry = turbo.cache.tiers[0].backend.get(turbo.last_key())
    assert entry.expires_at == pytest.approx(entry.created_at + 2, abs=0.01)
    qa(question="forever")
    assert turbo.cache.tiers[0].backend.get(turbo.last_key()).expires_at is None
    with turbo.caching(ttl=60):
        qa(question="scoped")
        scoped = turbo.cache.tiers[0].backend.get(turbo.last_key())
        assert scoped.expires_at == pytest.approx(scoped.created_at + 60, abs=0.01)
        qa(question="per call wins", config={"cache": {"ttl": 5}})
        inner = turbo.cache.tiers[0].backend.get(turbo.last_key())
        assert inner.expires_at == pytest.approx(inner.created_at + 5, abs=0.01)


def test_per_call_control_mistakes_name_the_argument(make_turbo, lm):
    make_turbo().install()
    with pytest.raises(ValueError, match="unknown control 'no_store'; did you mean 'no-store'"):
        lm("x", cache={"no_store": True})
    with pytest.raises(ValueError, match="a ttl must be more than 0"):
        lm("x", cache={"ttl": 0})
    assert _calls(lm) == 0


# -- ttl 0 in code: refused, as in the config -------------------------------------------------------


def test_ttl_zero_is_refused_in_code_as_in_config(make_turbo):
    turbo = make_turbo()
    with pytest.raises(ValueError, match=r"cached\(ttl=...\): a ttl must be more than 0"):
        dspy_turbo.cached(ttl=0)
    with pytest.raises(ValueError, match=r"store\(ttl=...\): a ttl must be more than 0"):
        turbo.store("k", "v", ttl=0)
    with pytest.raises(ValueError, match="a ttl must be more than 0"):
        turbo.refresh(ttl="0s")
    with pytest.raises(dspy_turbo.ConfigError, match="a ttl must be more than 0"):
        make_turbo({"cache": {"ttl": 0, "tiers": [{"type": "memory"}]}})


def test_cached_functions_follow_the_scopes(make_turbo):
    turbo = make_turbo()
    runs = []

    @turbo.cached
    def tool(x):
        runs.append(x)
        return x * 2

    tool(1)
    tool(1)
    assert runs == [1]
    with turbo.bypass():
        tool(1)
        tool(2)
    assert runs == [1, 1, 2]
    tool(2)
    assert runs == [1, 1, 2, 2]
    with turbo.read_only():
        tool(3)
    tool(3)
    assert runs == [1, 1, 2, 2, 3, 3]


# -- last_key and explain_key on the request DSPy made ----------------------------------------------


def test_last_key_is_the_key_of_the_request_dspy_made(make_turbo, http_lm):
    turbo = make_turbo().install()
    seen = []
    turbo.bus.add("test", lambda event: seen.append(event) if event.kind in ("hit", "miss") else None)
    qa = dspy.Predict("question -> answer")
    assert turbo.last_key() is None
    qa(question="What is the capital of France?")
    key = turbo.last_key()
    assert key.startswith(f"{turbo.namespace}:v")
    assert [e.key for e in seen] == [key]  # the miss event names it
    explained = turbo.explain_key()  # the last request, as keyed
    assert explained["key"] == key
    assert turbo.explain_key(key) == explained  # from an event's key
    assert "api_key" not in str(explained["fields"])  # never a credential
    qa(question="What is the capital of France?")
    assert [e.kind for e in seen] == ["miss", "hit"] and seen[1].key == key
    with pytest.raises(ValueError, match="not a key this process made recently"):
        turbo.explain_key("dspy-turbo:v2:0000")


def test_last_key_is_per_thread(make_turbo, lm, run_threads):
    turbo = make_turbo().install()
    qa = dspy.Predict("question -> answer")
    qa(question="main thread")
    mine = turbo.last_key()
    theirs = []

    def other():
        with dspy.context(lm=lm, adapter=None):
            qa(question="other thread")
            theirs.append(turbo.last_key())

    run_threads(other, 1)
    assert turbo.last_key() == mine and theirs[0] != mine


# -- record and replay ---------------------------------------------------------------------------------


def _file_config(tmp_path, **cache):
    return {"namespace": "replay-test", "cache": {"tiers": [{"type": "memory"}, {"type": "file",
                                                                              "directory": str(tmp_path / "rec")}],
                                                  **cache}}


def test_replay_serves_the_recording_and_refuses_a_miss(tmp_path, make_turbo, lm, monkeypatch):
    qa = dspy.Predict("question -> answer")
    monkeypatch.setenv("DSPY_TURBO_MODE", "record")
    recorder = make_turbo(_file_config(tmp_path)).install()
    assert recorder.mode == "record"
    recorded = qa(question="What is the capital of France?").answer
    qa(question="What is the capital of France?")  # record reads nothing: asked again, written again
    assert _calls(lm) == 2
    recorder.close()

    monkeypatch.delenv("DSPY_TURBO_MODE")
    player = make_turbo(_file_config(tmp_path, mode="replay")).install()
    assert qa(question="What is the capital of France?").answer == recorded
    with pytest.raises(dspy_turbo.ReplayMiss) as refused:
        qa(question="What is the capital of Spain?")
    message = str(refused.value)
    assert "openai/gpt-4o-mini" in message and "question -> answer" in message
    assert "capital of Spain" in message and refused.value.key in message
    assert refused.value.key == player.last_key()
    with pytest.raises(dspy_turbo.ReplayMiss, match="cache=False"):
        lm("anything", cache=False)
    with pytest.raises(dspy_turbo.ReplayMiss, match="reads nothing"), player.bypass():
        qa(question="What is the capital of France?")
    assert _calls(lm) == 2  # replay never called the LM

    @player.cached
    def tool(x):
        return x

    with pytest.raises(dspy_turbo.ReplayMiss, match="function"):
        tool(1)


def test_replay_over_http_async(tmp_path, make_turbo, http_lm, openai_server):
    qa = dspy.Predict("question -> answer")
    recorder = make_turbo(_file_config(tmp_path, mode="record")).install()
    asyncio.run(qa.acall(question="recorded"))
    recorder.close()
    make_turbo(_file_config(tmp_path, mode="replay")).install()
    asyncio.run(qa.acall(question="recorded"))
    with pytest.raises(dspy_turbo.ReplayMiss, match="not recorded"):
        asyncio.run(qa.acall(question="not recorded"))
    assert openai_server.calls == 1


def test_mode_mistakes_are_config_errors(make_turbo, monkeypatch):
    with pytest.raises(dspy_turbo.ConfigError, match="cache.mode"):
        make_turbo({"cache": {"mode": "replya", "tiers": [{"type": "memory"}]}})
    monkeypatch.setenv("DSPY_TURBO_MODE", "replya")
    with pytest.raises(dspy_turbo.ConfigError, match=r"DSPY_TURBO_MODE='replya' is not a mode; did you mean 'replay'"):
        make_turbo()


def test_normal_mode_is_the_default(make_turbo, monkeypatch):
    monkeypatch.delenv("DSPY_TURBO_MODE", raising=False)
    assert make_turbo().mode == "normal"


def test_scope_object_is_single_use_at_a_time(make_turbo):
    scope = make_turbo().bypass()
    with scope, pytest.raises(RuntimeError, match="in use already"), scope:
        pass
    with scope:  # once left, usable again
        pass
    time.sleep(0)
