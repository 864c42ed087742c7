"""Tests of the example SQLite tier: the core's conformance suite, then what is specific to
this backend (literal prefixes, chunked bulk reads, purging, persistence via the plugin).

The module name is unique on purpose: the repository runs every example's tests in one
pytest session, without ``__init__.py`` files.
"""

from __future__ import annotations

import sqlite3
import time

import pytest
from pydantic import ValidationError

import dspy_turbo
from dspy_turbo import Entry
from dspy_turbo.testing import CacheBackendSuite
from dspy_turbo_sqlite_example import SQLiteBackend
from dspy_turbo_sqlite_example import backend as backend_module


def _rows(path: str) -> list[str]:
    """The keys stored in the file, read through a separate connection."""
    db = sqlite3.connect(path)
    try:
        return sorted(key for (key,) in db.execute("SELECT key FROM entries"))
    finally:
        db.close()


class TestSQLiteBackendConformance(CacheBackendSuite):
    @pytest.fixture
    def backend(self, tmp_path):
        backend = SQLiteBackend(SQLiteBackend.Options(path=str(tmp_path / "cache.db")))
        yield backend
        backend.close()

    @pytest.fixture
    def corrupt(self):
        def overwrite_with_garbage(backend: SQLiteBackend, key: str) -> None:
            db = sqlite3.connect(backend.options.path)
            try:
                with db:  # commits
                    changed = db.execute("UPDATE entries SET value = ? WHERE key = ?", (b"\x00garbage\xff", key)).rowcount
            finally:
                db.close()
            assert changed == 1, "the corrupt fixture found no stored row to damage"

        return overwrite_with_garbage


@pytest.fixture
def backend(tmp_path):
    backend = SQLiteBackend(SQLiteBackend.Options(path=str(tmp_path / "cache.db")))
    yield backend
    backend.close()


def test_corrupt_blob_is_deleted_from_the_file(backend, tmp_path):
    backend.set("k", Entry.create({"v": 1}))
    db = sqlite3.connect(backend.options.path)
    with db:
        db.execute("UPDATE entries SET value = ? WHERE key = ?", (b"not an entry", "k"))
    db.close()
    assert backend.get_many(["k"]) == {}
    assert _rows(backend.options.path) == []


def test_clear_treats_the_prefix_literally(backend):
    # `%` and `_` are LIKE wildcards; a prefix must match them as plain characters.
    for key in ("a%b", "a_b", "abc", "ab", "b"):
        backend.set(key, Entry.create({"k": key}))
    assert backend.clear("a%") == 1
    assert backend.clear("a_") == 1
    assert backend.get("abc") is not None and backend.get("ab") is not None
    assert backend.clear("ab") == 2
    assert backend.get("b") is not None


def test_clear_with_the_highest_code_point_and_everything(backend):
    top = "\U0010ffff"
    for key in (f"x{top}", f"x{top}{top}z", "y", "x"):
        backend.set(key, Entry.create({"k": key}))
    assert backend.clear(f"x{top}") == 2
    assert backend.get("y") is not None and backend.get("x") is not None
    assert backend.clear() == 2
    assert backend.get("y") is None


def test_get_many_beyond_one_statements_parameter_limit(backend):
    keys = [f"bulk:{i}" for i in range(1200)]  # more than one chunk of `?` parameters
    for key in keys:
        backend.set(key, Entry.create({"k": key}))
    found = backend.get_many([*keys, "bulk:missing", keys[0]])
    assert set(found) == set(keys)
    assert found["bulk:1199"].value == {"k": "bulk:1199"}


def test_get_many_skips_expired_entries(backend):
    backend.set("short", Entry.create({"v": 1}), ttl=0.2)
    backend.set("long", Entry.create({"v": 2}))
    time.sleep(0.3)
    assert set(backend.get_many(["short", "long"])) == {"long"}


def test_configured_ttl_applies_when_set_gets_none(tmp_path):
    backend = SQLiteBackend(SQLiteBackend.Options(path=str(tmp_path / "c.db"), ttl="200ms"))
    try:
        backend.set("k", Entry.create({"v": 1}))
        assert backend.get("k") is not None
        time.sleep(0.3)
        assert backend.get("k") is None
    finally:
        backend.close()


def test_expired_rows_nobody_reads_are_purged_on_write(backend, monkeypatch):
    monkeypatch.setattr(backend_module, "_PURGE_INTERVAL", 0.0)
    backend.set("stale", Entry.create({"v": 1}), ttl=0.1)
    time.sleep(0.2)
    backend.set("fresh", Entry.create({"v": 2}))
    assert _rows(backend.options.path) == ["fresh"]


def test_setting_an_expired_entry_removes_the_old_value(backend):
    backend.set("k", Entry.create({"v": 1}))
    expired = Entry.create({"v": 2}, ttl=0.05)
    time.sleep(0.1)
    backend.set("k", expired)
    assert backend.get("k") is None


def test_a_closed_backend_raises_and_closing_twice_is_fine(backend):
    backend.close()
    backend.close()
    with pytest.raises(RuntimeError, match="closed"):
        backend.get("k")


def test_options_accept_units_expand_the_home_dir_and_reject_unknown_keys(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    options = SQLiteBackend.Options.model_validate({"path": "~/sub/c.db", "ttl": "7d", "timeout": "250ms"})
    assert options.path == str(tmp_path / "sub" / "c.db")
    assert options.ttl == 7 * 86400 and options.timeout == 0.25
    assert "~" not in SQLiteBackend.Options().path
    with pytest.raises(ValidationError):
        SQLiteBackend.Options.model_validate({"pth": "c.db"})


# -- through dspy-turbo: the installed entry point, config, persistence ------------------------


def test_plugin_is_found_through_its_entry_point_and_the_file_persists(tmp_path, monkeypatch):
    monkeypatch.delenv("DSPY_TURBO_PLUGINS", raising=False)  # load every installed plugin
    path = str(tmp_path / "c.db")
    turbo = dspy_turbo.load({"cache": {"tiers": [{"type": "memory"}, {"type": "sqlite", "path": path}]}})
    try:
        # Registered by the entry point named in pyproject.toml, not by anything else.
        assert turbo.registry.owners[("cache_backend", "sqlite")] == "sqlite_example"
        key = turbo.key({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
        assert turbo.store(key, {"answer": "hello"})
    finally:
        turbo.close()

    # A new Turbo whose only tier is the file: the value must come from disk.
    turbo2 = dspy_turbo.load({"cache": {"tiers": [{"type": "sqlite", "path": path}]}})
    try:
        assert turbo2.lookup(key) == {"answer": "hello"}
        assert turbo2.clear() == {"sqlite": 1}
        assert turbo2.lookup(key) is None
    finally:
        turbo2.close()


def test_the_readme_yaml_loads_and_writes_its_file(tmp_path, monkeypatch):
    monkeypatch.delenv("DSPY_TURBO_PLUGINS", raising=False)
    monkeypatch.chdir(tmp_path)  # the README's path is relative to the working directory
    (tmp_path / "turbo.yaml").write_text(
        "cache:\n"
        "  tiers:\n"
        "    - type: memory\n"
        "    - type: sqlite\n"
        "      path: ./cache.db\n"
        "      ttl: 7d\n",
        encoding="utf-8",
    )
    turbo = dspy_turbo.load(tmp_path / "turbo.yaml")
    try:
        assert turbo.store("readme:key", [1, 2, 3])
    finally:
        turbo.close()
    assert _rows(str(tmp_path / "cache.db")) == ["readme:key"]
