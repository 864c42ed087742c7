import pickle
import re

import litellm
import numpy as np
import orjson
import pytest

from dspy_turbo import DecodeError, EncodeError, Entry


def model_response():
    return litellm.ModelResponse(
        id="r1", model="gpt-4o-mini",
        choices=[{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "[[ ## answer ## ]]\n4"}}],
        usage={"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
    )


def test_json_roundtrip_with_metadata():
    e = Entry.create({"a": [1, 2, {"b": "ü"}]}, ttl=60, usage={"total_tokens": 9}, cost=0.5, model="m", tags=("x",))
    back = Entry.from_bytes(e.to_bytes())
    assert back.value == {"a": [1, 2, {"b": "ü"}]}
    assert back.usage == {"total_tokens": 9} and back.cost == 0.5 and back.model == "m" and back.tags == ("x",)
    assert back.expires_at == pytest.approx(e.expires_at)


def test_model_response_comes_back_as_the_same_type():
    back = Entry.from_bytes(Entry.create(model_response()).to_bytes()).value
    assert isinstance(back, litellm.ModelResponse)
    assert back.choices[0].message.content == "[[ ## answer ## ]]\n4"
    assert back.usage.total_tokens == 15


def test_copies_are_independent_of_the_cached_value():
    e = Entry.create(model_response())
    mine = e.copy_value()
    mine.choices[0].message.content = "changed"
    mine.usage = {}
    assert e.value.choices[0].message.content == "[[ ## answer ## ]]\n4"
    assert e.value.usage.total_tokens == 15


def test_numpy_roundtrip():
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    back = Entry.from_bytes(Entry.create(arr).to_bytes()).value
    assert back.dtype == np.float32 and (back == arr).all()


def test_unencodable_value_raises_encode_error():
    with pytest.raises(EncodeError):
        Entry.create(object())


@pytest.mark.parametrize("blob", [
    b"",
    b"garbage",
    pickle.dumps({"a": 1}),
    b"DT\x01{not json",
    b"DT\x09{}",
    b'DT\x01{"t": "os.system", "d": "echo pwned"}',
    b'DT\x01{"t": "json"}',
])
def test_corrupt_or_foreign_bytes_are_decode_errors(blob):
    with pytest.raises(DecodeError):
        Entry.from_bytes(blob)


def test_pickle_payload_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))

    with pytest.raises(DecodeError):
        Entry.from_bytes(pickle.dumps(Evil()))
    assert not marker.exists()


_FIELDS = ("t", "d", "c", "e", "u", "$", "m", "g")


def _wire(version: int, **fields) -> bytes:
    """Entry bytes in format 1 (an object) or 2 (an array), built by hand."""
    import orjson

    body = {"t": "json", "d": {"a": 1}, "c": 1.0, "e": None, "u": {}, "$": None, "m": None, "g": [], **fields}
    payload = body if version == 1 else [body[name] for name in _FIELDS]
    return b"DT" + bytes([version]) + orjson.dumps(payload)


@pytest.mark.parametrize("version", [1, 2, 3])
@pytest.mark.parametrize("meta", [{"u": {"total_tokens": "n/a"}}, {"u": ["x"]}, {"$": "free"}, {"m": 7}, {"g": "tag"},
                                  {"g": [1]}, {"c": "yesterday"}, {"e": "never"}, {"t": 3}, {"u": {"n": True}},
                                  {"c": True}])
def test_metadata_of_the_wrong_type_is_a_decode_error_naming_the_field(version, meta):
    assert Entry.from_bytes(_wire(version)).value == {"a": 1}  # the same bytes without the bad field decode
    with pytest.raises(DecodeError) as caught:
        Entry.from_bytes(_wire(version, **meta))
    field = {"t": "tag", "c": "created_at", "e": "expires_at", "u": "usage", "$": "cost", "m": "model", "g": "tags"}
    assert re.search(rf"at `{field[next(iter(meta))]}[`\[]", str(caught.value)), str(caught.value)


@pytest.mark.parametrize("blob", [b"DT\x02[]", b'DT\x02["json", {}]', b'DT\x02{"t": "json", "d": 1}',
                                  b'DT\x02["json", 1, 1.0, null, {}, null, null, [], "extra"]',
                                  b'DT\x02["json", 1, 1.0, null, {}, null, null, [], null]',
                                  b'DT\x02["json", 1, 1.0, null, {}, null, null, [], null, true]',
                                  b'DT\x02["json", 1, 1.0, null, {}, null, null, [], "RFRcAg==", true]'])
def test_an_array_of_the_wrong_shape_is_a_decode_error(blob):
    with pytest.raises(DecodeError):
        Entry.from_bytes(blob)


def test_an_entry_carries_no_per_instance_dict():
    """A memory tier holds entries by the hundred thousand: per-copy state lives in slots
    (a __dict__ would add ~330 B to each)."""
    created = Entry.create({"a": 1})
    read = Entry.from_bytes(created.to_bytes())
    for entry in (created, read):
        assert not hasattr(entry, "__dict__")
    assert read.copy_value() is read.value and read.copy_value() is not read.value, "owned once, then copied"


def test_entries_written_in_format_1_are_still_read():
    """A cache written by the previous release stays warm after an upgrade."""
    old = Entry.from_bytes(_wire(1, u={"total_tokens": 7}, **{"$": 0.5}, m="openai/gpt-4o-mini", g=["eval"], e=9e9))
    assert (old.value, old.total_tokens, old.cost, old.model, old.tags, old.expires_at) == \
        ({"a": 1}, 7, 0.5, "openai/gpt-4o-mini", ("eval",), 9e9)
    assert Entry.create({"a": 1}).to_bytes().startswith(b"DT\x03")  # new writes use format 3


def test_entries_written_in_format_2_are_still_read():
    """Format 2's values: plain JSON and the per-type tags of before (a ModelResponse's fields)."""
    assert Entry.from_bytes(_wire(2)).value == {"a": 1}
    fields = model_response().model_dump(mode="json")
    old = Entry.from_bytes(_wire(2, t="litellm.ModelResponse", d=fields))
    assert isinstance(old.value, litellm.ModelResponse) and old.value.usage.total_tokens == 15
    assert old.copy_value() is not old.copy_value()


def test_format_3_knows_only_its_own_tags():
    with pytest.raises(DecodeError, match="unknown value tag"):
        Entry.from_bytes(_wire(3, t="litellm.ModelResponse", d={}))


def test_a_prediction_keeps_all_its_completions():
    import dspy

    prediction = dspy.Prediction.from_completions([{"answer": "a"}, {"answer": "b"}, {"answer": "c"}])
    again = Entry.from_bytes(Entry.create(prediction).to_bytes()).copy_value()
    assert isinstance(again, dspy.Prediction) and again.answer == "a"
    assert [c.answer for c in again.completions] == ["a", "b", "c"]


@pytest.mark.parametrize("value", [[{"a": object()}], {"a": [1, {"b": {lambda: 3}}]}, {"f": print}])
def test_values_of_no_known_type_are_not_stored(value):
    with pytest.raises(EncodeError):
        Entry.create(value)


def test_nesting_deeper_than_64_levels_is_not_stored_and_shallower_is():
    def nested(depth):
        value = "leaf"
        for _ in range(depth):
            value = [value]
        return {"a": value}

    assert Entry.from_bytes(Entry.create(nested(60)).to_bytes()).value == nested(60)
    with pytest.raises(EncodeError):
        Entry.create(nested(70))


def _nested(lists: int, dicts: int) -> bytes:
    """Plain JSON that nests ``lists`` lists inside ``dicts`` dicts, as bytes written by hand."""
    return b'{"a":' * dicts + b"[" * lists + b"1" + b"]" * lists + b"}" * dicts


def _planted(value: bytes) -> bytes:
    return b'DT\x03["json",' + value + b',1.0,null,{},null,null,[]]'


@pytest.mark.parametrize("lists, dicts", [(65, 0), (0, 65), (33, 32)])
def test_a_plain_json_entry_nested_one_level_past_the_bound_is_a_decode_error(lists, dicts):
    with pytest.raises(DecodeError, match="deeper"):
        Entry.from_bytes(_planted(_nested(lists, dicts)))
    # one level shallower, and far more brackets inside a string: read back as they are
    shallower = (lists - 1, dicts) if lists else (lists, dicts - 1)
    assert Entry.from_bytes(_planted(_nested(*shallower))).value == orjson.loads(_nested(*shallower))
    assert Entry.from_bytes(_planted(b'"' + b"[{" * 500 + b'"')).value == "[{" * 500


def _read(result):
    """What a read gives, comparable across ``from_bytes`` and ``from_many``."""
    if isinstance(result, DecodeError):
        return ("error", type(result), str(result))
    return ("entry", result.tag, result.value, result.created_at, result.usage, result.cost, result.model, result.tags,
            result._owned, result.to_bytes())


def _one(blob):
    try:
        return Entry.from_bytes(blob)
    except DecodeError as exc:
        return exc


_CURRENT = {
    "plain": Entry.create({"answer": ["Paris", {"since": 987}]}, usage={"total_tokens": 9}, cost=0.5, model="m",
                          tags=("x",)).to_bytes(),
    "typed": Entry.create(model_response()).to_bytes(),
    "tuple": Entry.create(("a", 1, {2, 3})).to_bytes(),
    "at the bound": _planted(_nested(63, 0)),
    "past the bound": _planted(_nested(33, 32)),
    "brackets in a string": _planted(b'"' + b"[{" * 500 + b'"'),
    "deep typed": b'DT\x03["typed",' + b"[" * 70 + b"1" + b"]" * 70 + b',1.0,null,{},null,null,[]]',
    "unknown tag": _wire(3, t="litellm.ModelResponse", d={}),
    "metadata of the wrong type": _wire(3, u={"total_tokens": "n/a"}),
}
_OTHER = {
    "format 2": _wire(2),
    "format 1": _wire(1),
    "truncated": _CURRENT["plain"][:-7],
    "pickle": pickle.dumps({"answer": "planted"}),
    "bytearray": bytearray(_CURRENT["plain"]),
    "memoryview": memoryview(_CURRENT["plain"]),
}


_FAST = ["plain", "typed", "tuple", "at the bound", "brackets in a string"]
_FAST_WITH_BAD = [*_FAST, "past the bound", "deep typed", "unknown tag"]  # parse, then fail one by one


@pytest.mark.parametrize("names, fast", [(_FAST, True), (_FAST_WITH_BAD, True), ([*_CURRENT, *_OTHER], False),
                                         (["plain", "metadata of the wrong type"], False), (["truncated", "plain"], False),
                                         (["plain", "format 2"], False), (["memoryview"], False), ([], True)],
                         ids=["current", "current with bad ones", "everything", "bad metadata", "a bad parse",
                              "an older one", "not bytes", "none"])
def test_a_bulk_decode_answers_each_blob_as_from_bytes_does(names, fast, monkeypatch):
    """``from_many`` (a bulk read's path) gives, blob by blob and in order, what ``from_bytes``
    gives or raises: whichever of its paths the blobs take, and whatever their neighbours hold."""
    from dspy_turbo.cache import entry as module

    blobs = [{**_CURRENT, **_OTHER}[name] for name in names]
    one_by_one = []
    monkeypatch.setattr(module, "_from_bytes_or_error", lambda blob: one_by_one.append(blob) or _one(blob))
    got = Entry.from_many(blobs)
    assert (not one_by_one) == fast, "current-format blobs that parse are decoded together; anything else one by one"
    assert len(got) == len(blobs)
    for name, blob, result in zip(names, blobs, got, strict=True):
        assert _read(result) == _read(_one(blob)), name


def test_a_bulk_decode_gives_each_read_its_own_value():
    blob = _CURRENT["plain"]
    first, second = Entry.from_many([blob, blob])
    first.copy_value()["answer"].append("changed")
    assert second.copy_value() == {"answer": ["Paris", {"since": 987}]}
