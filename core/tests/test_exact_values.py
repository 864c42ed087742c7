"""Values come back as they went in, side by side with plain DSPy's Cache, through the
memory, file and redis tiers: a ``request_cache`` function and real DSPy LMs (chat, text
and Responses models over HTTP, LiteLLM's engine and DSPy's native one, the offline
engine). And what the entry codec refuses: classes not on the allow-list, values nested
too deep, planted entries that name a class or nest past the bound."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import math
import sys
import uuid
from zoneinfo import ZoneInfo

import dspy
import litellm
import numpy as np
import pydantic
import pytest
from dspy.clients.cache import request_cache
from side_by_side import SIDES, Side

import dspy_turbo
from dspy_turbo.cache.entry import Entry
from dspy_turbo.engines.offline import offline_lm

# Side by side through the memory, file and redis tiers.
pytestmark = pytest.mark.requires_plugin("file", "redis")


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    tags: tuple[str, ...]


class Answer(pydantic.BaseModel):
    text: str
    scores: tuple[float, ...] = ()
    when: dt.datetime | None = None


class NotAllowed(pydantic.BaseModel):
    secret: str


dspy_turbo.register_codec(Color, Level, Point, f"{Answer.__module__}:Answer")


def values():
    return {
        "tuple": (1, "a", (2.5, None)),
        "nested tuples in a list": [(1, 2), [(3,)]],
        "nan and inf": [float("nan"), float("inf"), -math.inf],
        "non-string keys": {1: "one", 2.5: "x", (1, 2): "pair", None: 0, False: "f"},
        "a $ key": {"$tuple": [1], "plain": True},
        "set": {1, 2, 3},
        "frozenset": frozenset({"a", "b"}),
        "bytes": b"\x00\xffbin",
        "bytearray": bytearray(b"ab"),
        "datetime": dt.datetime(2024, 3, 31, 2, 30, 0, 123456, tzinfo=ZoneInfo("Europe/Paris")),
        "naive datetime": dt.datetime(2024, 1, 2, 3, 4, 5),
        "date": dt.date(1999, 12, 31),
        "time": dt.time(23, 59, 58, 1),
        "timedelta": dt.timedelta(days=-1, seconds=5, microseconds=7),
        "decimal": decimal.Decimal("1.10"),
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "big int": 2**80,
        "enum": Color.BLUE,
        "int enum": Level.LOW,
        "dataclass": Point(3, ("a", "b")),
        "pydantic": Answer(text="yes", scores=(0.5, 1.0), when=dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)),
        "numpy scalar": np.float32(1.5),
        "numpy array": np.arange(6, dtype=np.int16).reshape(2, 3),
        "mixed": {"rows": [(1, Color.RED), {2, 3}], "at": dt.date(2000, 1, 1)},
    }


def same(a, b) -> bool:
    """Equal, and of the same type all the way down (NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and bool((a == b).all())
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a) and all(type(x) is type(y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, datetime_types := (dt.datetime, dt.time)):
        return a == b and a.tzinfo == b.tzinfo and a.fold == b.fold and isinstance(b, datetime_types)
    if isinstance(a, pydantic.BaseModel):
        return same(dict(a), dict(b)) and a.model_fields_set == b.model_fields_set
    return a == b


@pytest.fixture(params=SIDES)
def side(request, tmp_path):
    made = Side(request.param, tmp_path, request)
    yield made
    made.close()


def _counting(value_of):
    computed = []

    @request_cache()
    def compute(name):
        computed.append(name)
        return value_of(name)

    return compute, computed


def test_every_value_comes_back_as_it_went_in(side):
    compute, computed = _counting(lambda name: values()[name])
    for name in values():
        compute(name=name)
        again = compute(name=name)
        assert same(again, values()[name]), f"{name}: {again!r} from {side.name}"
    assert computed == list(values()), "every value was cached: computed once each"


def test_a_hit_is_the_callers_own_copy(side):
    compute, _ = _counting(lambda name: {"rows": [(1, 2)], "seen": {1}})
    compute(name="own")
    mine = compute(name="own")
    mine["rows"].append("mutated")
    mine["seen"].add(2)
    assert compute(name="own") == {"rows": [(1, 2)], "seen": {1}}


# -- real LMs: every response type DSPy stores comes back as that type, with its cost --------


def _lm_cases():
    cases = [("litellm", "chat"), ("litellm", "text"), ("litellm", "responses"), ("auto", "chat"),
             ("auto", "responses")]
    return [pytest.param(engine, model_type, id=f"{engine}-{model_type}") for engine, model_type in cases]


@pytest.mark.parametrize(("engine", "model_type"), _lm_cases())
def test_two_identical_lm_calls_make_one_provider_call_and_the_hit_keeps_type_and_cost(side, openai_server, engine,
                                                                                       model_type):
    lm = dspy.LM("openai/gpt-4o-mini", api_base=openai_server.url, api_key="sk-test-not-a-secret",
                 model_type=model_type, engine=engine)
    predict = dspy.Predict("question -> answer")
    with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
        with dspy.track_usage() as first_usage:
            first = predict(question=f"What is 2 + 2 ({engine}, {model_type})?")
        with dspy.track_usage() as second_usage:
            second = predict(question=f"What is 2 + 2 ({engine}, {model_type})?")
    assert openai_server.calls == 1
    assert second.answer == first.answer
    miss, hit = lm.history[-2], lm.history[-1]
    assert type(hit["response"]) is type(miss["response"])
    assert hit["cost"] == miss["cost"], "the hit reports the cost of the call it saved, as DSPy's does"
    assert hit["usage"] == {} and second_usage.get_total_tokens() == {}, "a hit made no LM call"
    assert first_usage.get_total_tokens()[lm.model]["total_tokens"] > 0
    if side.turbo is not None:
        assert side.turbo.stats()["hits_total"] == 1 and not side.turbo.stats()["skipped_stores"]


def test_the_offline_engine_round_trips_through_every_tier(side):
    lm = offline_lm("openai/gpt-4o-mini")
    with dspy.context(lm=lm, adapter=None):
        first = dspy.Predict("question -> answer")(question="offline?")
        second = dspy.Predict("question -> answer")(question="offline?")
    assert lm.engine.calls == 1 and first.answer == second.answer
    assert type(lm.history[-1]["response"]) is type(lm.history[-2]["response"])
    assert lm.history[-1]["cost"] == lm.history[-2]["cost"]


def test_an_embedding_response_round_trips(side, openai_server):
    compute, computed = _counting(lambda name: litellm.embedding(model="openai/text-embedding-3-small", input=[name],
                                                                 api_base=openai_server.url, api_key="sk-test"))
    first = compute(name="embed me")
    again = compute(name="embed me")
    assert computed == ["embed me"]
    assert type(again) is litellm.EmbeddingResponse
    assert [d["embedding"] for d in again.data] == [d["embedding"] for d in first.data] and again.model == first.model
    assert again.usage == {}, "as DSPy's cache does to any hit with a usage: no LM call was made"
    assert again._hidden_params.get("response_cost") == first._hidden_params.get("response_cost")


# -- what is not cached ---------------------------------------------------------------------


@pytest.fixture
def recorded(make_turbo, tmp_path):
    events = []

    class Recorder:
        @dspy_turbo.hookimpl
        def dspy_turbo_metric_event(self, event):
            events.append(event)

    turbo = make_turbo({"cache": {"tiers": [{"type": "memory"}, {"type": "file", "directory": str(tmp_path / "f")}]}},
                       plugins=[Recorder()]).install()
    turbo.events = events
    yield turbo
    turbo.uninstall()


def _events(turbo, kind):
    turbo.flush_events()
    return [e for e in turbo.events if e.kind == kind]


def test_a_class_not_on_the_allow_list_is_not_cached_and_the_event_names_it(recorded):
    compute, computed = _counting(lambda name: {"answer": NotAllowed(secret=name)})
    assert compute(name="a") == compute(name="a") == {"answer": NotAllowed(secret="a")}
    assert computed == ["a", "a"]
    skipped = _events(recorded, "skip_store")
    assert [e.reason for e in skipped] == ["unencodable"] * 2
    assert f"type {NotAllowed.__module__}.NotAllowed" in skipped[0].error


def test_configure_cache_safe_types_allow_a_class(recorded, restore_dspy_cache_module):
    class Allowed(pydantic.BaseModel):
        n: int

    sys.modules[__name__].Allowed = Allowed  # importable by its path, as a program's own classes are
    Allowed.__qualname__ = "Allowed"
    compute, computed = _counting(lambda name: Allowed(n=len(name)))
    compute(name="before")
    dspy.configure_cache(enable_disk_cache=True, enable_memory_cache=True, restrict_pickle=True, safe_types=[Allowed])
    compute(name="after")
    again = compute(name="after")
    assert type(again) is Allowed and again.n == 5 and computed == ["before", "after"]


@pytest.fixture
def restore_dspy_cache_module():
    yield
    sys.modules[__name__].__dict__.pop("Allowed", None)


def test_cache_safe_types_in_the_config_allow_a_class_by_its_path(make_turbo, tmp_path):
    import_path = f"{__name__}:ConfiguredOnly"
    turbo = make_turbo({"cache": {"tiers": [{"type": "file", "directory": str(tmp_path / "f")}],
                                  "safe_types": [import_path]}})
    key = turbo.key({"q": "configured"})
    assert turbo.store(key, ConfiguredOnly(flag=True))
    assert type(turbo.lookup(key)) is ConfiguredOnly


class ConfiguredOnly(pydantic.BaseModel):
    flag: bool


def test_a_bad_safe_types_path_is_a_config_error():
    with pytest.raises(dspy_turbo.ConfigError, match=r"cache\.safe_types"):
        dspy_turbo.load({"cache": {"safe_types": ["not a path"]}})


def test_a_value_nested_too_deep_is_returned_but_not_stored(recorded):
    def deep(name):
        value = name
        for _ in range(300):
            value = [value]
        return value

    compute, computed = _counting(deep)
    assert compute(name="x") == compute(name="x") == deep("x")
    assert computed == ["x", "x"]
    assert [e.reason for e in _events(recorded, "skip_store")] == ["too_deep", "too_deep"]


# -- planted entries -----------------------------------------------------------------------


def _raw_entry(tag: bytes, value: bytes) -> Entry:
    """An entry whose wire bytes are exactly ``b"DT\\x03[" + tag + value + ...]`` (written by hand)."""
    entry = Entry.create(None)
    entry._blob = b'DT\x03["' + tag + b'",' + value + b',1.0,null,{},null,null,[]]'
    return entry


def _lm_key(turbo, lm, question):
    with dspy.context(lm=lm, adapter=None):
        dspy.Predict("question -> answer")(question=question)
    keys = turbo.cache.tiers[-1].backend.keys()
    assert len(keys) == 1
    return keys[0]


@pytest.fixture
def file_only(make_turbo, tmp_path):
    events = []

    class Recorder:
        @dspy_turbo.hookimpl
        def dspy_turbo_metric_event(self, event):
            events.append(event)

    turbo = make_turbo({"cache": {"tiers": [{"type": "file", "directory": str(tmp_path / "f")}]}},
                       plugins=[Recorder()]).install()
    turbo.events = events
    yield turbo
    turbo.uninstall()


def test_a_planted_entry_naming_a_class_off_the_allow_list_imports_nothing(file_only, tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "planted_module_xyz.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nclass Evil:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    lm = offline_lm("openai/gpt-4o-mini")
    key = _lm_key(file_only, lm, "planted")
    backend = file_only.cache.tiers[0].backend
    for tag in ("$pydantic", "$dataclass", "$enum"):
        payload = b'{"%s": ["planted_module_xyz:Evil", {"fields": {}}]}' % tag.encode()
        backend.set(key, _raw_entry(b"typed", payload))
        with dspy.context(lm=lm, adapter=None):
            dspy.Predict("question -> answer")(question="planted")
        assert backend.get(key) is not None, "the LM call stored a good entry again"
    assert lm.engine.calls == 4, "each planted entry was a miss"
    assert not marker.exists() and "planted_module_xyz" not in sys.modules
    corrupt = [e for e in _events(file_only, "error") if e.reason == "corrupt"]
    assert len(corrupt) == 3 and all("allow-list" in e.error for e in corrupt)
    assert file_only.stats()["hits_total"] == 0


@pytest.mark.parametrize("tag", [b"json", b"typed"])
def test_a_planted_entry_nested_300_deep_is_a_corrupt_miss(file_only, tag):
    lm = offline_lm("openai/gpt-4o-mini")
    key = _lm_key(file_only, lm, "deep")
    backend = file_only.cache.tiers[0].backend
    backend.set(key, _raw_entry(tag, b"[" * 300 + b"]" * 300))
    with dspy.context(lm=lm, adapter=None):
        answer = dspy.Predict("question -> answer")(question="deep")
    assert answer.answer and lm.engine.calls == 2
    assert any(e.reason == "corrupt" and "deeper" in (e.error or "") for e in _events(file_only, "error"))
    assert backend.get(key) is not None and backend.get(key).value != []


@pytest.mark.parametrize("payload", [b'{"$tuple": 5}', b'{"$dict": [[1]]}', b'{"$float": "1.5"}', b'{"$nope": 1}',
                                     b'{"$uuid": "x"}', b'{"$litellm": ["ModelResponse", 1, {}]}',
                                     b'{"$litellm": ["Other", {}, {}]}', b'{"$ndarray": {"dtype": "|O", "shape": [1]}}',
                                     b'{"a": 1, "$b": 2}', b'{"$datetime": ["yesterday", null, 0]}'])
def test_a_typed_entry_of_the_wrong_shape_is_a_decode_error(payload):
    with pytest.raises(dspy_turbo.DecodeError):
        Entry.from_bytes(_raw_entry(b"typed", payload).to_bytes())


# -- counting: a corrupt read is a miss, never a hit -----------------------------------------


def test_a_corrupt_entry_counts_as_a_miss_not_a_hit(file_only):
    lm = offline_lm("openai/gpt-4o-mini")
    key = _lm_key(file_only, lm, "counted")
    file_only.reset_stats()
    file_only.cache.put(key, Entry.create(42))
    with dspy.context(lm=lm, adapter=None):
        dspy.Predict("question -> answer")(question="counted")
    stats = file_only.stats()
    assert stats["hits_total"] == 0 and stats["misses"] == 1 and lm.engine.calls == 2
    assert [e.key for e in _events(file_only, "error") if e.reason == "corrupt"] == [key]
    assert not [e for e in _events(file_only, "hit")]
