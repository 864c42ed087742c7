"""Export and import: JSON lines of envelopes, never pickle; ``turbo.export``/``import_``, and
DSPy's ``save_memory_cache``/``load_memory_cache`` side by side with plain DSPy's."""

from __future__ import annotations

import json
import time

import dspy
import pytest

from dspy_turbo.cache.entry import Entry
from dspy_turbo.cache.transfer import TransferError
from dspy_turbo.engines.offline import offline_lm
from dspy_turbo.integration.dspy_cache import DSPyCache

MEMORY = {"cache": {"tiers": [{"type": "memory"}]}}


@pytest.fixture
def restore_dspy_cache():
    original = dspy.__dict__.get("cache")
    yield
    if original is None:
        dspy.__dict__.pop("cache", None)
    else:
        dspy.cache = original


@pytest.fixture(params=["dspy", "turbo"])
def side(request, make_turbo, restore_dspy_cache):
    """Plain DSPy with its memory cache only, or a Turbo with a memory tier installed."""
    if request.param == "dspy":
        dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=True)
        yield request.param
        return
    turbo = make_turbo(MEMORY).install()
    yield request.param
    turbo.uninstall()


def test_save_and_load_memory_cache_as_dspy_does(side, tmp_path):
    """The same calls and assertions on both sides. Before, dspy-turbo raised NotImplementedError."""
    lm = offline_lm("openai/gpt-4o-mini")
    program = dspy.Predict("question -> answer")
    path = tmp_path / "memory.cache"
    with dspy.context(lm=lm, adapter=None):
        first = program(question="What is saved?").answer
        dspy.cache.save_memory_cache(str(path))
        dspy.cache.reset_memory_cache()
        dspy.cache.load_memory_cache(str(path), allow_pickle=True)
        assert program(question="What is saved?").answer == first
        assert lm.engine.calls == 1, "the loaded cache answered"
        dspy.cache.reset_memory_cache()
        program(question="What is saved?")
        assert lm.engine.calls == 2, "and without it the LM is called"


def test_save_memory_cache_writes_json_lines_and_a_pickle_is_refused(turbo, lm, tmp_path):
    program = dspy.Predict("question -> answer")
    program(question="one")
    program(question="two")
    path = tmp_path / "saved.jsonl"
    dspy.cache.save_memory_cache(str(path))
    lines = [json.loads(line) for line in path.read_text().splitlines()]  # text, one JSON object a line
    assert lines[0]["dspy_turbo_export"] == 1 and lines[0]["namespace"] == turbo.namespace
    assert len(lines) == 3 and all(line["key"].startswith(turbo.keys.prefix) for line in lines[1:])
    assert {line["model"] for line in lines[1:]} == {"openai/gpt-4o-mini"}
    # DSPy's own file is a cloudpickle: never loaded, whatever allow_pickle says
    pickled = tmp_path / "dspy.pkl"
    pickled.write_bytes(b"\x80\x05\x95" + b"\x00" * 20)
    assert isinstance(dspy.cache, DSPyCache)
    with pytest.raises(TransferError, match="pickle; dspy-turbo never loads pickles"):
        dspy.cache.load_memory_cache(str(pickled), allow_pickle=True)


def test_export_then_import_into_another_namespace_serves_the_same_answers(make_turbo, lm, tmp_path):
    source = make_turbo({"namespace": "exported", **MEMORY}).install()
    program = dspy.Predict("question -> answer")
    answers = [program(question=f"question {i}").answer for i in range(5)]
    with source.tagged("faq"):
        program(question="tagged")
    expiring = Entry.create({"v": 1}, ttl=0.05)
    source.cache.put(source.keys.prefix + "f" * 32, expiring)
    time.sleep(0.1)
    path = tmp_path / "cache.jsonl.gz"
    report = source.export(path)
    assert report.entries == 6 and report.tiers == {"memory": 6}
    source.close()

    target = make_turbo({"namespace": "imported", **MEMORY}).install()
    report = target.import_(path)
    assert report.entries == 6 and report.tiers == {"memory": 6}
    assert all(key.startswith("imported:") for key, _ in target.cache.tiers[0].backend.entries(""))
    calls = lm.engine.calls
    assert [program(question=f"question {i}").answer for i in range(5)] == answers
    assert lm.engine.calls == calls, "every answer came from the imported entries"
    assert target.invalidate(tag="faq") == {"memory": 1}, "tags travel with the entries"


@pytest.mark.parametrize("text,words", [
    ("", "line 1: not a dspy-turbo export"),
    ('{"dspy_turbo_export": 9}\n', "export format 9"),
    ('{"dspy_turbo_export": 1, "namespace": "x", "key_version": 2}\n{"key": "x:v2:a", "tag": "nope", "value": 1,'
     ' "created_at": 1}\n', "line 2: unknown value tag 'nope'"),
    ('{"dspy_turbo_export": 1, "namespace": "x", "key_version": 2}\n{"key": "x:v2:a", "tag": "json", "value": 1,'
     ' "created_at": "yesterday"}\n', "line 2: not an entry"),
    ('{"dspy_turbo_export": 1, "namespace": "x", "key_version": 2}\nnot json\n', "line 2"),
])
def test_a_bad_file_is_a_message_naming_the_line(make_turbo, tmp_path, text, words):
    path = tmp_path / "bad.jsonl"
    path.write_text(text)
    with pytest.raises(TransferError, match=words.replace("(", r"\(")):
        make_turbo(MEMORY).import_(path)


def test_entries_of_another_key_version_are_skipped(make_turbo, tmp_path):
    path = tmp_path / "old.jsonl"
    path.write_text('{"dspy_turbo_export": 1, "namespace": "x", "key_version": 1}\n'
                    '{"key": "x:v1:a", "tag": "json", "value": 1, "created_at": 1}\n')
    report = make_turbo(MEMORY).import_(path)
    assert report.entries == 0 and report.skipped == {"key_version": 1}
