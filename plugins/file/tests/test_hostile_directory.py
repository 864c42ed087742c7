"""What someone who can write to the cache directory can make the file tier do: nothing to
files outside it, and with a signing key, no planted or moved entry is ever served."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import diskcache
import dspy
import pytest

import dspy_turbo
from dspy_turbo.cache.entry import Entry
from dspy_turbo.cache.keys import KEY_VERSION
from dspy_turbo_file import FileBackend, FileOptions

SIGNING_KEY = "file-tier-test-signing-key-0123456789"


class _Recorder:
    def __init__(self):
        self.events = []

    @dspy_turbo.hookimpl
    def dspy_turbo_metric_event(self, event):
        self.events.append(event)


def _config(directory, **cache):
    return {"cache": {"tiers": [{"type": "memory"}, {"type": "file", "directory": str(directory)}], **cache}}


def _rows(directory: Path) -> list[tuple]:
    db = sqlite3.connect(directory / "cache.db")
    try:
        return db.execute("SELECT key, mode, filename FROM Cache").fetchall()
    finally:
        db.close()


def _plant(directory: Path, filename: str) -> None:
    """Point every row at ``filename`` as a value kept in its own file (diskcache's binary mode)."""
    db = sqlite3.connect(directory / "cache.db")
    with db:
        db.execute("UPDATE Cache SET mode = ?, filename = ?, value = NULL", (diskcache.core.MODE_BINARY, filename))
    db.close()


@pytest.fixture
def victim(tmp_path):
    """A file outside the cache directory, alone in its own directory (so its directory would go too)."""
    path = tmp_path / "outside" / "precious" / "notes.txt"
    path.parent.mkdir(parents=True)
    path.write_text("the user's own file")
    return path


def _escapes(cache_dir: Path, victim: Path) -> dict[str, str]:
    """Row filenames that lead to ``victim``: relative, absolute, and (set up by the test) in
    diskcache's own shape through a symlinked directory or as a symlinked file."""
    return {"relative": os.path.relpath(victim, cache_dir), "absolute": str(victim),
            "symlinked directory": "ab/12/" + "1" * 28 + ".val", "symlinked file": "cd/ef/" + "0" * 28 + ".val"}


@pytest.mark.parametrize("form", ["relative", "absolute", "symlinked directory", "symlinked file"])
def test_a_row_naming_a_file_outside_the_directory_is_a_miss_that_touches_nothing(tmp_path, victim, lm, form):
    cache_dir = tmp_path / "cache"
    program = dspy.Predict("question -> answer")
    with dspy_turbo.load(_config(cache_dir)):
        answer = program(question="What is in the notes?").answer
    escapes = _escapes(cache_dir, victim)
    if form == "symlinked directory":  # cache/ab -> outside/: ab/12/<name>.val is outside/12/<name>.val
        outside = victim.parent.parent / "12" / ("1" * 28 + ".val")
        outside.parent.mkdir()
        outside.write_text("the user's own file")
        victim = outside
        (cache_dir / "ab").symlink_to(victim.parent.parent, target_is_directory=True)
    elif form == "symlinked file":
        link = cache_dir / escapes[form]
        link.parent.mkdir(parents=True)
        link.symlink_to(victim)
    _plant(cache_dir, escapes[form])

    recorder = _Recorder()
    with dspy_turbo.load(_config(cache_dir), plugins=[recorder]) as turbo:  # a new process: empty memory tier
        assert program(question="What is in the notes?").answer == answer  # the LM again, not the file
        assert victim.exists() and victim.read_text() == "the user's own file", "the outside file was deleted"
        assert lm.engine.calls == 2
        assert turbo.flush_events(5)
        corrupt = [e for e in recorder.events if e.kind == "error" and e.reason == "corrupt"]
        assert len(corrupt) == 1 and "outside the cache directory" in corrupt[0].error  # refused, never opened
    assert [mode for _, mode, _ in _rows(cache_dir)] == [diskcache.core.MODE_RAW]  # replaced by the real answer


@pytest.mark.parametrize("operation", ["clear", "invalidate", "expire", "evict", "overwrite"])
def test_deleting_evicting_or_overwriting_a_planted_row_never_deletes_outside_files(tmp_path, victim, operation):
    cache_dir = tmp_path / "cache"
    backend = FileBackend(FileOptions(directory=str(cache_dir), max_bytes=200_000))
    backend.set(f"ns:v{KEY_VERSION}:a", Entry.create({"v": 1}), ttl=60)
    backend.close()
    _plant(cache_dir, os.path.relpath(victim, cache_dir))
    backend = FileBackend(FileOptions(directory=str(cache_dir), max_bytes=200_000))
    try:
        if operation == "clear":
            assert backend.clear("ns:") == 1
        elif operation == "invalidate":
            turbo = dspy_turbo.load(_config(cache_dir, tiers=[{"type": "file", "directory": str(cache_dir)}]))
            turbo.invalidate(namespace="ns")
            turbo.close()
        elif operation == "expire":
            db = sqlite3.connect(cache_dir / "cache.db")
            with db:
                db.execute("UPDATE Cache SET expire_time = 1")
            db.close()
            assert backend.expire() == 1
        elif operation == "evict":  # past max_bytes: diskcache culls the oldest rows
            for i in range(30):
                backend.set(f"ns:v{KEY_VERSION}:big{i}", Entry.create({"text": "x" * 40_000}))
        else:
            backend.set(f"ns:v{KEY_VERSION}:a", Entry.create({"v": 2}))
            assert backend.get(f"ns:v{KEY_VERSION}:a").value == {"v": 2}
        assert f"ns:v{KEY_VERSION}:a" not in [key for key, _, _ in _rows(cache_dir) if operation != "overwrite"]
    finally:
        backend.close()
    assert victim.read_text() == "the user's own file"


def test_a_planted_entry_is_served_without_a_signing_key_and_refused_with_one(tmp_path, lm):
    """Well-formed entries written straight into the directory (here: two answers swapped
    between their keys) are served by an unsigned tier: signing is what stops them."""
    program = dspy.Predict("question -> answer")
    questions = ["Is the bridge open?", "What is the toll?"]
    for signing in ({}, {"signing_key": SIGNING_KEY}):
        directory = tmp_path / ("signed" if signing else "unsigned")
        config = _config(directory, **signing)
        with dspy_turbo.load(config):
            right = [program(question=q).answer for q in questions]
        db = sqlite3.connect(directory / "cache.db")
        with db:
            (k1, v1), (k2, v2) = db.execute("SELECT key, value FROM Cache").fetchall()
            db.execute("UPDATE Cache SET value = ? WHERE key = ?", (v2, k1))
            db.execute("UPDATE Cache SET value = ? WHERE key = ?", (v1, k2))
        db.close()
        recorder = _Recorder()
        with dspy_turbo.load(config, plugins=[recorder]) as turbo:
            served = [program(question=q).answer for q in questions]
            assert turbo.flush_events(5)
            refused = [e for e in recorder.events if e.kind == "error" and e.reason == "corrupt"]
        if signing:
            assert served == right and len(refused) == 2 and all("signature" in e.error for e in refused)
        else:
            assert served == right[::-1] and refused == []  # wrong answers, served: the threat signing removes
    assert lm.engine.calls == 2 + 2 + 2  # two questions per directory, then the two refused entries asked again


def test_an_unsigned_entry_is_refused_once_a_signing_key_is_set(tmp_path, lm):
    cache_dir = tmp_path / "cache"
    program = dspy.Predict("question -> answer")
    with dspy_turbo.load(_config(cache_dir)):
        answer = program(question="Which platform for the 9:15?").answer
    recorder = _Recorder()
    with dspy_turbo.load(_config(cache_dir, signing_key=SIGNING_KEY), plugins=[recorder]) as turbo:
        assert program(question="Which platform for the 9:15?").answer == answer
        assert lm.engine.calls == 2 and turbo.stats()["stores"]["file"] == 1  # asked again, stored signed
        assert turbo.flush_events(5)
        assert [e.error for e in recorder.events if e.kind == "error"] == [
            "IntegrityError: the entry is not signed (cache.signing_key is set)"]
        assert all(SIGNING_KEY not in repr(e) for e in recorder.events)
        assert SIGNING_KEY not in repr(turbo.settings) + repr(turbo.config) + str(turbo.settings.model_dump())
    with dspy_turbo.load(_config(cache_dir, signing_key=SIGNING_KEY)) as turbo:
        assert program(question="Which platform for the 9:15?").answer == answer
        assert lm.engine.calls == 2 and turbo.stats()["hits"] == {"file": 1}
