"""DSPy's caching switches, its Cache interface and streaming, side by side: plain DSPy
(its own ``Cache``) and dspy-turbo installed, the same calls and the same assertions,
through real DSPy LMs (the offline engine, and the OpenAI-compatible server over HTTP)."""

import asyncio
import os

import dspy
import pytest
from dspy.clients.cache import Cache, request_cache
from dspy.streaming import StreamListener, StreamResponse

import dspy_turbo
from dspy_turbo.engines.offline import offline_lm
from dspy_turbo.engines.openai_server import OpenAIServer
from dspy_turbo.integration.dspy_cache import DSPyCache

# The Turbo side is memory + file tiers, as DSPy's is memory + disk.
pytestmark = pytest.mark.requires_plugin("file")


class Side:
    """One way of caching: ``dspy`` (DSPy's own Cache) or ``turbo`` (memory + file tiers)."""

    def __init__(self, name, tmp_path, make_turbo, **cache):
        self.name = name
        self.dir = tmp_path / "cache-dir"
        self.turbo = None
        if name == "dspy":
            dspy.configure_cache(enable_disk_cache=True, enable_memory_cache=True, disk_cache_dir=str(self.dir))
        else:
            self.turbo = make_turbo({"cache": {"tiers": [{"type": "memory"}, {"type": "file", "directory": str(self.dir)}],
                                               **cache}}).install()

    def configure(self, **kwargs):
        """``dspy.configure_cache`` with the disk cache (if any) in a directory of the test's own."""
        kwargs.setdefault("disk_cache_dir", str(self.dir.parent / f"configured-{os.urandom(3).hex()}"))
        dspy.configure_cache(**kwargs)


def _close(cache):
    close = getattr(getattr(cache, "disk_cache", None), "close", None)
    if close is not None:
        close()


@pytest.fixture
def restore_dspy_cache():
    original = dspy.__dict__.get("cache")
    yield
    current = dspy.__dict__.get("cache")
    if current is not original and not isinstance(current, DSPyCache):
        _close(current)
    if original is None:
        dspy.__dict__.pop("cache", None)
    else:
        dspy.cache = original


@pytest.fixture(params=["dspy", "turbo"])
def side(request, tmp_path, make_turbo, restore_dspy_cache):
    made = Side(request.param, tmp_path, make_turbo)
    yield made
    if made.turbo is not None:
        made.turbo.uninstall()


class Model:
    """A real DSPy LM and the count of requests its provider received."""

    def __init__(self, lm, calls):
        self.lm = lm
        self.calls = calls


@pytest.fixture(params=["offline", "http"])
def model(request):
    if request.param == "offline":
        lm = offline_lm("openai/gpt-4o-mini", latency=0.3)
        with dspy.context(lm=lm, adapter=None):
            yield Model(lm, lambda: lm.engine.calls)
        return
    with OpenAIServer(latency=0.3) as server:
        lm = dspy.LM("openai/gpt-4o-mini", api_base=server.url, api_key="sk-test-not-a-secret")
        with dspy.context(lm=lm, adapter=None):
            yield Model(lm, lambda: server.calls)


def _counting_embedder():
    computed = []

    def embed(texts):
        computed.extend(texts)
        return [[float(len(t)), 1.0] for t in texts]

    return dspy.Embedder(embed, caching=True), computed


def _counting_function(**options):
    computed = []

    @request_cache(**options)
    def lookup(query):
        computed.append(query)
        return {"query": query, "rows": [1, 2, 3]}

    return lookup, computed


# -- DSPy's off switch -------------------------------------------------------------------------


def test_configure_cache_off_switches_every_cache_use_off_and_on_again(side, model):
    predict = dspy.Predict("question -> answer")
    predict(question="cached?")
    predict(question="cached?")
    assert model.calls() == 1

    side.configure(enable_disk_cache=False, enable_memory_cache=False)
    embedder, embedded = _counting_embedder()
    lookup, looked_up = _counting_function()
    predict(question="cached?")
    predict(question="cached?")
    embedder(["a", "bb"])
    embedder(["a", "bb"])
    lookup(query="q")
    lookup(query="q")
    assert model.calls() == 3, "caching is off: every call reaches the LM"
    assert embedded == ["a", "bb", "a", "bb"] and looked_up == ["q", "q"]

    side.configure(enable_disk_cache=True, enable_memory_cache=True)
    predict(question="on again?")
    predict(question="on again?")
    embedder(["c"])
    embedder(["c"])
    assert model.calls() == 4 and embedded[-1:] == ["c"] and len(embedded) == 5


def test_configure_cache_never_splits_the_program_between_two_caches(side, model):
    side.configure(enable_disk_cache=True, enable_memory_cache=True)
    embedder, embedded = _counting_embedder()
    lookup, looked_up = _counting_function()
    embedder(["same text"])
    lookup(query="same")
    dspy.Predict("question -> answer")(question="an LM call in between")
    embedder(["same text"])
    lookup(query="same")
    assert embedded == ["same text"] and looked_up == ["same"], "one cache before and after the LM call"
    assert model.calls() == 1


def test_configure_cache_with_one_of_the_two_on(side, model):
    predict = dspy.Predict("question -> answer")
    side.configure(enable_disk_cache=False, enable_memory_cache=True)
    predict(question="memory only")
    predict(question="memory only")
    assert model.calls() == 1
    assert len(dspy.cache.memory_cache) == 1 and len(dspy.cache.disk_cache) == 0

    side.configure(enable_disk_cache=True, enable_memory_cache=False)
    predict(question="memory only")  # the memory cache is off: not served from it
    assert model.calls() == 2
    predict(question="memory only")
    assert model.calls() == 2, "served from the disk cache"
    assert len(dspy.cache.disk_cache) == 1


def test_a_cache_the_program_assigns_is_the_one_used(side, model):
    dspy.cache = Cache(enable_disk_cache=False, enable_memory_cache=True, disk_cache_dir=None)
    predict = dspy.Predict("question -> answer")
    predict(question="whose cache?")
    predict(question="whose cache?")
    embedder, embedded = _counting_embedder()
    embedder(["x"])
    embedder(["x"])
    assert model.calls() == 1 and embedded == ["x"]
    assert len(dspy.cache.memory_cache) == 2, "the LM answer and the embedding, both in the assigned cache"


def test_turbo_is_the_cache_after_configure_cache_and_uninstall_gives_dspy_what_was_asked(make_turbo, lm,
                                                                                          restore_dspy_cache):
    turbo = make_turbo().install()
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True, disk_cache_dir=None)
    assert dspy.cache is turbo.integration.adapter
    lm("one")
    lm("one")
    assert lm.engine.calls == 1 and turbo.stats()["hits_total"] == 1
    turbo.uninstall()
    assert type(dspy.cache) is Cache
    assert dspy.cache.enable_memory_cache and not dspy.cache.enable_disk_cache


def test_configure_cache_checks_its_arguments_like_dspy(turbo, restore_dspy_cache):
    with pytest.raises(ValueError, match="memory_max_entries"):
        dspy.configure_cache(enable_memory_cache=True, memory_max_entries=0)
    with pytest.raises(TypeError):
        dspy.configure_cache(enable_memory_cahce=True)


def test_install_again_puts_the_turbo_back_after_a_program_assigned_cache(make_turbo, lm, restore_dspy_cache):
    turbo = make_turbo().install()
    dspy.cache = Cache(enable_disk_cache=False, enable_memory_cache=True, disk_cache_dir=None)
    lm("aside")
    assert turbo.stats()["misses"] == 0, "the assigned cache served DSPy, not the Turbo"
    turbo.install()
    assert dspy.cache is turbo.integration.adapter
    lm("back")
    lm("back")
    assert turbo.stats()["hits_total"] == 1


# -- the Cache interface: memory_cache, disk_cache, disk_cache_dir, flags ----------------------


def test_cache_attributes_read_as_dspy_documents_them(side, model):
    lm = model.lm
    lm("Query")
    cache = dspy.cache
    assert len(cache.memory_cache) == 1
    key = next(iter(cache.memory_cache.keys()))
    assert key in cache.disk_cache and key in cache
    assert cache.memory_cache[key]["_dspy_format"] == cache.disk_cache[key]["_dspy_format"]
    assert os.path.isdir(cache.disk_cache_dir)
    assert cache.enable_memory_cache is True and cache.enable_disk_cache is True

    cache.reset_memory_cache()
    assert len(cache.memory_cache) == 0 and key in cache.disk_cache
    lm("Query")
    assert model.calls() == 1, "served from the disk cache"
    assert key in cache.memory_cache, "and promoted to memory again"


def test_put_without_the_memory_cache_writes_the_disk_cache_only(side):
    lookup, looked_up = _counting_function(enable_memory_cache=False)
    lookup(query="big")
    assert len(dspy.cache.memory_cache) == 0 and len(dspy.cache.disk_cache) == 1
    assert lookup(query="big") == {"query": "big", "rows": [1, 2, 3]}
    assert looked_up == ["big"], "served from the disk cache"
    assert len(dspy.cache.memory_cache) == 1, "a disk hit is promoted to memory"


def test_the_instance_flags_switch_caching(side, model):
    lookup, looked_up = _counting_function()
    predict = dspy.Predict("question -> answer")
    dspy.cache.enable_memory_cache = False
    dspy.cache.enable_disk_cache = False
    for _ in range(2):
        lookup(query="flags")
        predict(question="flags")
    assert looked_up == ["flags", "flags"] and model.calls() == 2
    dspy.cache.enable_memory_cache = True
    dspy.cache.enable_disk_cache = True
    for _ in range(2):
        lookup(query="flags")
        predict(question="flags")
    assert looked_up == ["flags"] * 3 and model.calls() == 3


def test_reset_memory_cache_does_nothing_when_the_memory_cache_is_off(side):
    lookup, looked_up = _counting_function()
    lookup(query="kept")
    dspy.cache.enable_memory_cache = False
    dspy.cache.reset_memory_cache()
    dspy.cache.enable_memory_cache = True
    assert len(dspy.cache.memory_cache) == 1


def test_memory_cache_view_is_read_only(turbo):
    with pytest.raises(TypeError, match="read-only"):
        dspy.cache.memory_cache["k"] = 1
    with pytest.raises(TypeError, match="reset_memory_cache"):
        dspy.cache.memory_cache.clear()


# -- streaming ---------------------------------------------------------------------------------


def _streaming_program():
    """A new program per stream: a listener holds the state of one stream (DSPy's ``allow_reuse``)."""
    return dspy.streamify(dspy.Predict("question -> answer"), stream_listeners=[StreamListener("answer")])


async def _consume(program, question):
    chunks, final = [], None
    async for item in program(question=question):
        if isinstance(item, StreamResponse):
            chunks.append(item.chunk)
        elif isinstance(item, dspy.Prediction):
            final = item
    return chunks, final


def test_concurrent_identical_streams_each_get_the_chunks(side, model):
    async def both():  # two callers, each with its own program and listener (a listener holds one stream's state)
        return await asyncio.gather(_consume(_streaming_program(), "stream to both"),
                                    _consume(_streaming_program(), "stream to both"))

    results = asyncio.run(both())
    for chunks, final in results:
        assert chunks, "every stream's listener receives chunks"
        assert "".join(chunks).strip() == final.answer.strip()
    assert results[0][1].answer == results[1][1].answer
    assert model.calls() == (2 if side.name == "dspy" else 1)


def test_a_cache_hit_streams_no_chunks_as_in_dspy(side, model):
    first, _ = asyncio.run(_consume(_streaming_program(), "stream once"))
    second, final = asyncio.run(_consume(_streaming_program(), "stream once"))
    assert first and second == [] and final.answer
    assert model.calls() == 1


def test_stream_hits_replays_a_cache_hit_to_the_listeners(make_turbo, model, tmp_path):
    make_turbo({"cache": {"tiers": [{"type": "memory"}], "stream_hits": True}}).install()
    for adapter in (dspy.ChatAdapter(), dspy.JSONAdapter()):
        with dspy.context(adapter=adapter):
            question = f"replay with {type(adapter).__name__}"
            first, _ = asyncio.run(_consume(_streaming_program(), question))
            second, final = asyncio.run(_consume(_streaming_program(), question))
            assert len(second) > 1 and final.answer
            assert "".join(second) == "".join(first), "the replay reads as the live stream read"
    assert model.calls() == 2


def test_concurrent_async_streams_each_get_the_chunks(make_turbo, model):
    make_turbo().install()
    program = dspy.streamify(dspy.Predict("question -> answer"), stream_listeners=[StreamListener("answer")],
                             is_async_program=False)
    async_program = dspy.streamify(dspy.Predict("question -> answer"), stream_listeners=[StreamListener("answer")],
                                   async_streaming=True)

    async def both():
        return await asyncio.gather(_consume(async_program, "async streams"), _consume(program, "async streams"))

    for chunks, final in asyncio.run(both()):
        assert chunks and "".join(chunks).strip() == final.answer.strip()
    assert model.calls() == 1


# -- what a cache read serves must be what the caller needs --------------------------------------


@pytest.fixture
def two_tiers(make_turbo, tmp_path):
    errors = []

    class Errors:
        @dspy_turbo.hookimpl
        def dspy_turbo_metric_event(self, event):
            if event.kind == "error":
                errors.append(event)

    turbo = make_turbo({"cache": {"tiers": [{"type": "memory"}, {"type": "file", "directory": str(tmp_path / "f")}]}},
                       plugins=[Errors()]).install()
    turbo.errors = errors
    return turbo


def _only_key(turbo):
    keys = turbo.cache.tiers[0].backend.keys()
    assert len(keys) == 1
    return keys[0]


def _plant(turbo, key, value):
    from dspy_turbo.cache.entry import Entry

    assert turbo.cache.put(key, Entry.create(value)) == 2


@pytest.mark.parametrize("bad", [42, {}, "text", [1, 2], {"_dspy_format": "dspy-lm15-result-v1"},
                                 {"_dspy_format": "dspy-lm15-result-v1", "responses": [], "outputs": 5, "cost": None,
                                  "response_model": None},
                                 {"choices": [{"index": 0}]}],
                         ids=["int", "empty-dict", "str", "list", "record-without-responses", "record-bad-outputs",
                              "choice-without-message"])
def test_a_stored_value_that_is_not_an_lm_response_is_a_corrupt_entry(two_tiers, model, bad):
    turbo = two_tiers
    predict = dspy.Predict("question -> answer")
    good = predict(question="planted?").answer
    key = _only_key(turbo)
    _plant(turbo, key, bad)
    assert predict(question="planted?").answer == good, "a miss: the LM answers again"
    assert model.calls() == 2
    turbo.flush_events()
    corrupt = [e for e in turbo.errors if e.reason == "corrupt"]
    assert [e.key for e in corrupt] == [key] and corrupt[0].error
    for tier in turbo.cache.tiers:  # removed, then stored again: the good answer, in every tier
        assert tier.backend.get(key).value != bad
    assert predict(question="planted?").answer == good and model.calls() == 2


@pytest.mark.parametrize("bad", [42, [[1.0, 2.0]], "vectors", [["a", "b"], ["c", "d"]]],
                         ids=["int", "too-few-rows", "str", "not-numbers"])
def test_an_embedding_entry_of_the_wrong_shape_is_a_corrupt_entry(two_tiers, bad):
    turbo = two_tiers
    embedder, embedded = _counting_embedder()
    first = embedder(["a", "bb"])
    key = _only_key(turbo)
    _plant(turbo, key, bad)
    again = embedder(["a", "bb"])
    assert again.tolist() == first.tolist() and embedded == ["a", "bb", "a", "bb"]
    turbo.flush_events()
    assert [e.key for e in turbo.errors if e.reason == "corrupt"] == [key]


def test_a_request_cache_function_gets_whatever_it_stored(two_tiers):
    computed = []

    @request_cache()
    def anything(query):
        computed.append(query)
        return 42

    assert anything(query="q") == anything(query="q") == 42
    assert computed == ["q"] and not two_tiers.errors


def test_async_calls_follow_the_off_switch_too(side, model):
    predict = dspy.Predict("question -> answer")
    side.configure(enable_disk_cache=False, enable_memory_cache=False)
    asyncio.run(predict.acall(question="async off"))
    asyncio.run(predict.acall(question="async off"))
    assert model.calls() == 2
    side.configure(enable_disk_cache=True, enable_memory_cache=True)
    asyncio.run(predict.acall(question="async on"))
    asyncio.run(predict.acall(question="async on"))
    assert model.calls() == 3


def test_a_corrupt_entry_read_by_an_async_call_is_a_miss(two_tiers, model):
    turbo = two_tiers
    predict = dspy.Predict("question -> answer")
    good = asyncio.run(predict.acall(question="async planted?")).answer
    key = _only_key(turbo)
    _plant(turbo, key, {"_dspy_format": "dspy-lm15-result-v1"})
    assert asyncio.run(predict.acall(question="async planted?")).answer == good
    assert model.calls() == 2
    turbo.flush_events()
    assert [e.key for e in turbo.errors if e.reason == "corrupt"] == [key]
