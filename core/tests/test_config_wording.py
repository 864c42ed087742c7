"""What a config file's author reads: compound durations, duplicate keys refused, a warning
for a bare number where a unit is conventional, and messages in the file's words rather
than pydantic's (no class names, no regular expressions)."""

import logging

import pytest

import dspy_turbo
from dspy_turbo.host.units import parse_duration


def _load_file(tmp_path, text):
    path = tmp_path / "turbo.yaml"
    path.write_text(text)
    return dspy_turbo.load(path)


def _problems(source):
    with pytest.raises(dspy_turbo.ConfigError) as info:
        dspy_turbo.load(source)
    return {issue.path: issue.message for issue in info.value.issues}


def test_compound_durations(tmp_path):
    assert parse_duration("1h30m") == 5400 and parse_duration("1d 12h") == 129600 and parse_duration("2m30s") == 150
    with pytest.raises(ValueError, match="largest first"):
        parse_duration("30m1h")
    turbo = _load_file(tmp_path, "cache:\n  ttl: 1h30m\n  tiers: [{type: memory}]\n")
    assert turbo.default_ttl == 5400
    turbo.close()


def test_duplicate_keys_are_refused_with_their_line(tmp_path):
    with pytest.raises(dspy_turbo.ConfigError, match=r"duplicate key at line 4, column 3: the key 'ttl' appears twice"):
        _load_file(tmp_path, "cache:\n  ttl: 1h\n  tiers: [{type: memory}]\n  ttl: 2h\n")
    # the same key in two different mappings is fine
    _load_file(tmp_path, "cache:\n  tiers:\n    - {type: memory, ttl: 1h}\n  ttl: 2h\n").close()


def test_a_bare_number_in_a_file_warns_with_the_unit(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, "dspy_turbo"):
        turbo = _load_file(tmp_path, "cache:\n  singleflight: {lease: 30000}\n"
                                     "  tiers:\n    - {type: memory, max_bytes: 256}\n  ttl: 7d\n")
    found = {issue.path: issue.message for issue in turbo.config.warnings}
    turbo.close()
    assert found == {
        "cache.singleflight.lease": "a bare 30000 is 30000 seconds; write the unit: '30000s' "
                                    "(or '30000ms' if milliseconds were meant)",
        "cache.tiers[0].max_bytes": "a bare 256 is 256 bytes; write the unit: '256B' (or '256MB' if megabytes were meant)",
    }
    assert sum("a bare" in r.getMessage() for r in caplog.records) == 2


def test_messages_use_the_file_s_words():
    found = _problems({"namespace": "my app", "key": [], "cache": {"breaker": {"failures": "x"},
                                                                   "mode": "replya", "tiers": [{"type": "memory"}]}})
    assert found == {
        "namespace": "may hold only letters, digits, '_', '.' and '-' (no spaces, no ':')",
        "key": "expected a mapping of settings (key: value lines), got a list",
        "cache.breaker.failures": "expected a whole number, got text",
        "cache.mode": "expected one of normal, record, replay; did you mean 'replay'?",
    }


def test_the_semantic_section_without_its_plugin_says_what_to_install():
    """``cache.semantic`` is dspy-turbo-faiss's section: with only the core, the file's error names the package."""
    with pytest.raises(dspy_turbo.ConfigError) as info:
        dspy_turbo.load({"cache": {"tiers": [{"type": "memory"}], "semantic": {"index": {"type": "faiss"},
                                                                               "embedder": {"type": "sentence-transformers"}}}},
                        entry_points=False)
    assert {issue.path: issue.message for issue in info.value.issues} == {
        "cache.semantic": "the semantic cache (cache.semantic) is provided by dspy-turbo-faiss, which is not installed: "
                          "pip install dspy-turbo-faiss"}
