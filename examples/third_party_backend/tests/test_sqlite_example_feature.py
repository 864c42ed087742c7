"""The example plugin is also a feature: its own ``sqlite_example:`` config section and a
``stats()`` block, through hooks, touching no file of the core."""

from __future__ import annotations

import time

import pytest

import dspy_turbo
from dspy_turbo import Entry


def _config(tmp_path, section: str = "") -> str:
    path = tmp_path / "turbo.yaml"
    path.write_text(f"namespace: feat\ncache:\n  tiers:\n    - type: memory\n    - {{type: sqlite, path: '{tmp_path / 'c.db'}'}}\n"
                    + section)
    return str(path)


def test_its_section_is_read_and_its_stats_block_is_in_stats(tmp_path):
    turbo = dspy_turbo.load(_config(tmp_path, "sqlite_example:\n  compact_on_close: true\n"))
    assert turbo.settings.sqlite_example.compact_on_close is True
    backend = turbo.cache.tiers[1].backend
    for i in range(20):
        backend.set(f"feat:v2:{i:032x}", Entry.create({"text": "x"}), ttl=0.01 if i < 15 else None)
    time.sleep(0.05)
    block = turbo.stats()["sqlite_example"]
    assert block == {"compact_on_close": True, "compactions": 0, "compacted_rows": 0,
                     "files": {"sqlite": str(tmp_path / "c.db")}}
    counters = turbo.sqlite_example
    turbo.close()
    assert (counters.compactions, counters.compacted_rows) == (1, 15), "compacted at close"


def test_left_out_it_keeps_its_defaults_and_nothing_is_compacted(tmp_path):
    with dspy_turbo.load(_config(tmp_path)) as turbo:
        assert turbo.stats()["sqlite_example"]["compact_on_close"] is False
        counters = turbo.sqlite_example
    assert counters.compactions == 0
    with dspy_turbo.load({"cache": {"tiers": [{"type": "memory"}]}}) as turbo:
        assert "sqlite_example" not in turbo.stats(), "no sqlite tier: no block"


def test_a_misspelt_key_in_its_section_is_a_config_error_with_its_path(tmp_path):
    with pytest.raises(dspy_turbo.ConfigError) as info:
        dspy_turbo.load(_config(tmp_path, "sqlite_example:\n  compact_on_clse: true\n"))
    (issue,) = info.value.issues
    assert issue.path == "sqlite_example.compact_on_clse"
    assert "unknown key 'compact_on_clse'; did you mean 'compact_on_close'?" in issue.message


def test_its_section_is_in_the_schema():
    from dspy_turbo.host.config import json_schema
    from dspy_turbo.host.plugin_manager import build_registry, make_plugin_manager

    schema = json_schema(build_registry(make_plugin_manager()))
    assert "sqlite_example" in schema["properties"]


def test_without_the_plugin_its_section_is_an_unknown_key(monkeypatch):
    monkeypatch.setenv("DSPY_TURBO_PLUGINS", "")  # no entry-point plugin loaded
    with pytest.raises(dspy_turbo.ConfigError) as info:
        dspy_turbo.load({"sqlite_example": {"compact_on_close": True}})
    (issue,) = info.value.issues
    assert issue.path == "sqlite_example" and "unknown key 'sqlite_example'" in issue.message
