"""Nothing that passes `dspy-turbo check` breaks at run time, and reading a config is bounded.

Each value below used to pass the check (or crash it with an internal error) and then fail in
the program: an infinite or NaN duration or size, one too large for a socket, SQLite or
Redis, a `type:` that is not a string, YAML aliases that recurse or expand without bound.
Each is now a config error with its YAML path: `load()` raises ConfigError and `check`
exits 2, in bounded time and memory.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import tracemalloc

import pytest

import dspy_turbo
from dspy_turbo.cli import main as cli
from dspy_turbo.host.config import MAX_DEPTH, MAX_VALUES


def _yaml(tmp_path, text: str):
    path = tmp_path / "turbo.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def _problems(path) -> dict[str, str]:
    with pytest.raises(dspy_turbo.ConfigError) as info:
        dspy_turbo.load(path)
    return {issue.path: issue.message for issue in info.value.issues}


BAD_VALUES = [
    # (YAML, path of the problem, words the message must hold)
    ("cache: {ttl: .inf}", "cache.ttl", "at most 100 years"),
    ("cache: {ttl: .nan}", "cache.ttl", "not NaN"),
    ("cache: {ttl: -.inf}", "cache.ttl", "cannot be negative"),
    ("cache: {ttl: 1.0e+300}", "cache.ttl", "at most 100 years"),
    ("cache: {tiers: [{type: memory, max_bytes: .nan}]}", "cache.tiers[0].max_bytes", "not NaN"),
    ("cache: {tiers: [{type: memory, max_bytes: .inf}]}", "cache.tiers[0].max_bytes", "at most 9223372036854775807 bytes"),
    ("cache: {tiers: [{type: memory, max_bytes: 100000000000000000000000 TB}]}", "cache.tiers[0].max_bytes",
     "at most 9223372036854775807 bytes"),
    ("cache: {tiers: [{type: memory, max_bytes: 9223372036854775808}]}", "cache.tiers[0].max_bytes", "at most"),
    ("cache: {tiers: [{type: memory, timeout: 9223372036854775808}]}", "cache.tiers[0].timeout", "at most 100 years"),
    ("cache: {tiers: [{type: memory, timeout: 0}]}", "cache.tiers[0].timeout", "greater than 0"),
    ("cache: {breaker: {cooldown: .inf}}", "cache.breaker.cooldown", "at most 100 years"),
    ("cache: {singleflight: {lease: 1.0e+400}}", "cache.singleflight.lease", "at most 100 years"),
    ("cache: {singleflight: {wait: 5300 w}}", "cache.singleflight.wait", "at most 100 years"),
    ("metrics: {flush_timeout: .inf}", "metrics.flush_timeout", "at most 100 years"),
    ("cache: {tiers: [{type: [memory]}]}", "cache.tiers[0].type", "expected the cache backend type as a string"),
    ("cache: {tiers: [{type: {memory: 1}}]}", "cache.tiers[0].type", "available: "),
    ("metrics: {sinks: [{type: [log]}]}", "metrics.sinks[0].type", "as a string"),
    ("routing: {type: complexity, tiers: [{name: a, model: openai/gpt-4o-mini}], budget: {limit: 1, period: 0}}",
     "routing.budget.period", "greater than 0"),
    ("routing: {type: complexity, tiers: [{name: a, model: openai/gpt-4o-mini, max_score: .nan}]}",
     "routing.tiers[0].max_score", "finite number"),
]


@pytest.mark.parametrize("text,path,words", BAD_VALUES, ids=[case[1] + ":" + case[0][-24:] for case in BAD_VALUES])
def test_a_value_the_runtime_cannot_hold_is_a_config_error_with_its_path(tmp_path, capsys, text, path, words):
    config = _yaml(tmp_path, text + "\n")
    found = _problems(config)
    assert path in found, found
    assert words in found[path]
    assert cli(["check", str(config)]) == 2
    err = capsys.readouterr().err
    assert path in err and "Traceback" not in err


def test_the_largest_values_accepted_are_held_by_the_runtime(tmp_path, make_turbo, lm):
    """At the bounds themselves a Turbo loads and serves (a socket, a thread wait and a stored
    entry's expiry all take them)."""
    turbo = make_turbo({"cache": {"ttl": "5200w", "tiers": [{"type": "memory", "max_bytes": 2**63 - 1,
                                                             "timeout": "5200w", "ttl": "5200w"}]}}).install()
    assert turbo.default_ttl == 5200 * 7 * 86400
    first = lm("bounded")
    assert lm("bounded") == first and lm.engine.calls == 1
    assert turbo.stats()["errors"] == {}


def test_a_recursive_alias_is_refused_with_its_line(tmp_path, capsys):
    config = _yaml(tmp_path, """\
        namespace: app
        cache:
          tiers: &tiers
            - type: memory
            - *tiers
    """)
    found = _problems(config)
    assert "recursive alias" in found[""] and "*tiers" in found[""] and "line 5" in found[""]
    assert cli(["check", str(config)]) == 2


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    names = "abcdefghijklmnop"
    lines = ["a: &a [" + ",".join(["lol"] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"{names[i]}: &{names[i]} [" + ",".join([f"*{names[i - 1]}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_in_bounded_time_and_memory(tmp_path, capsys):
    text = _alias_bomb()  # 350 bytes that expand to over 9**9 (387 million) values
    assert len(text) < 360
    config = tmp_path / "bomb.yaml"
    config.write_text(text)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        found = _problems(config)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f"more than {MAX_VALUES} values" in found[""] and "line " in found[""]
    # Loose bounds (not performance targets): before, the same file took minutes and gigabytes.
    assert elapsed < 5.0, f"{elapsed:.1f}s"
    assert peak < 50 * 1024**2, f"{peak / 1024**2:.0f} MB"
    assert cli(["check", str(config)]) == 2


def test_aliases_within_the_bound_still_work(tmp_path, make_turbo):
    """Anchors are a normal YAML feature: a shared block is fine, only an unbounded one is refused."""
    config = _yaml(tmp_path, """\
        cache:
          tiers:
            - &mem {type: memory, max_bytes: 1MB}
            - {<<: *mem, name: second, max_bytes: 2MB}
    """)
    turbo = make_turbo(config)
    assert [t.name for t in turbo.cache.tiers] == ["memory", "second"]
    assert turbo.cache.tiers[1].backend.options.max_bytes == 2 * 1024**2


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000])
def test_deep_nesting_is_refused_with_its_line(tmp_path, capsys, depth):
    config = tmp_path / "deep.yaml"
    config.write_text("cache:\n  x: " + "[" * depth + "]" * depth + "\n")
    found = _problems(config)
    # ours past MAX_DEPTH; far deeper, libyaml's own limit may speak first
    assert ("nested more than" in found[""] or "nesting depth" in found[""]) and "line 2" in found[""]
    assert cli(["check", str(config)]) == 2


def test_a_huge_flat_list_stops_at_the_bound(tmp_path):
    config = tmp_path / "long.yaml"
    config.write_text("cache:\n  tiers:\n" + "    - 1\n" * (MAX_VALUES + 10))
    found = _problems(config)
    assert f"more than {MAX_VALUES} values" in found[""]


def test_an_integer_too_long_to_convert_is_a_config_error(tmp_path):
    config = tmp_path / "digits.yaml"
    config.write_text("cache: {tiers: [{type: memory, max_entries: " + "9" * 6000 + "}]}\n")
    found = _problems(config)
    assert "malformed YAML" in found[""]


def test_a_dict_config_that_contains_itself_is_refused():
    tier = {"type": "memory"}
    config = {"cache": {"tiers": [tier]}}
    tier["again"] = config
    with pytest.raises(dspy_turbo.ConfigError) as info:
        dspy_turbo.load(config)
    assert "contains itself" in str(info.value) and "cache.tiers[0].again" in str(info.value)


def test_check_exits_2_in_a_fresh_process_for_a_bomb(tmp_path):
    """The installed command, as a user runs it: a message, exit 2, no traceback, promptly."""
    config = tmp_path / "bomb.yaml"
    config.write_text(_alias_bomb())
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dspy_turbo.cli", "check", str(config)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "values once its aliases are expanded" in done.stderr
    assert time.perf_counter() - started < 60
