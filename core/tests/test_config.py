"""Config errors name the YAML path, suggest the closest name and the package to install."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

import dspy_turbo
from dspy_turbo.cli import main as cli


def write(tmp_path, text):
    path = tmp_path / "turbo.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def problems(source):
    with pytest.raises(dspy_turbo.ConfigError) as info:
        dspy_turbo.load(source)
    return {issue.path: issue.message for issue in info.value.issues}


def test_full_config_loads_with_units_and_env(tmp_path, monkeypatch):
    monkeypatch.setenv("TURBO_NS", "myapp")
    turbo = dspy_turbo.load(write(tmp_path, """
        namespace: ${TURBO_NS}
        key: {include_endpoint: false}
        cache:
          ttl: 7d
          tiers:
            - type: memory
              max_bytes: 64MB
              ttl: ${MEM_TTL:-90s}
          breaker: {failures: 5, cooldown: 2m}
    """))
    try:
        assert turbo.namespace == "myapp"
        assert turbo.default_ttl == 7 * 86400
        tier = turbo.cache.tiers[0]
        assert tier.ttl == 90 and tier.backend.options.max_bytes == 64 * 1024**2
        assert tier.breaker.cooldown == 120
    finally:
        turbo.close()


def test_no_config_is_the_embedded_default():
    turbo = dspy_turbo.load()
    try:
        assert [t.name for t in turbo.cache.tiers][0] == "memory"
    finally:
        turbo.close()


def test_unknown_component_type_suggests_and_lists():
    found = problems({"cache": {"tiers": [{"type": "memroy"}]}})
    message = found["cache.tiers[0].type"]
    assert "did you mean 'memory'" in message
    assert "memory" in message.split("available: ")[1].split(", ")


def test_known_plugin_type_names_the_package(monkeypatch):
    from dspy_turbo.host import plugin_manager as plugins

    installed = plugins._entry_points()  # as if dspy-turbo-redis and dspy-turbo-prometheus were not installed
    monkeypatch.setattr(plugins, "_entry_points", lambda: [ep for ep in installed if ep.name not in ("redis", "prometheus")])
    found = problems({"cache": {"tiers": [{"type": "redis", "url": "redis://localhost"}]},
                      "metrics": {"sinks": [{"type": "prometheus"}]}})
    assert "pip install dspy-turbo-redis" in found["cache.tiers[0].type"]
    assert "pip install dspy-turbo-prometheus" in found["metrics.sinks[0].type"]


@pytest.mark.requires_plugin("file")
def test_a_plugin_left_out_by_the_filter_is_not_pip_installed(monkeypatch):
    monkeypatch.setenv("DSPY_TURBO_PLUGINS", "sqlite_example")
    found = problems({"cache": {"tiers": [{"type": "redis", "url": "redis://localhost"}]}})["cache.tiers[0].type"]
    assert "pip install" not in found
    assert "dspy-turbo-redis is installed, but its plugin 'redis' is left out by DSPY_TURBO_PLUGINS=sqlite_example" in found


def test_unknown_keys_rejected_with_suggestion_at_every_level():
    found = problems({"namspace": "x", "cache": {"admision": {}, "tiers": [{"type": "memory", "maxbytes": 3}]}})
    assert "did you mean 'namespace'" in found["namspace"]
    assert "did you mean 'admission'" in found["cache.admision"]
    assert "did you mean 'max_bytes'" in found["cache.tiers[0].maxbytes"]


def test_bad_units_and_negative_sizes():
    found = problems({"cache": {"ttl": "7 parsecs", "tiers": [{"type": "memory", "max_bytes": "-5MB"}]}})
    assert "unknown duration unit 'parsecs'" in found["cache.ttl"]
    assert "cannot be negative" in found["cache.tiers[0].max_bytes"]


def test_missing_env_var_names_it_but_never_echoes_values(monkeypatch):
    monkeypatch.setenv("SECRET_NS", "bad namespace with spaces sk-123")
    found = problems({"namespace": "${SECRET_NS}", "cache": {"tiers": [{"type": "memory", "name": "${NOPE_NOT_SET}"}]}})
    assert "NOPE_NOT_SET is not set" in found["cache.tiers[0].name"]
    assert "sk-123" not in json.dumps(found)


def test_duplicate_tier_names():
    found = problems({"cache": {"tiers": [{"type": "memory"}, {"type": "memory"}]}})
    assert "already used" in found["cache.tiers[1]"]


def test_malformed_yaml_names_line(tmp_path):
    found = problems(write(tmp_path, "cache:\n  tiers: [\n"))
    assert "malformed YAML at line" in found[""]


def test_cli_check_ok_and_errors(tmp_path, capsys):
    good = write(tmp_path, "cache: {tiers: [{type: memory}]}\n")
    assert cli(["check", str(good)]) == 0
    assert "OK" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("cache: {tiers: [{type: memroy}]}\n")
    assert cli(["check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "cache.tiers[0].type" in err and "Traceback" not in err
    assert cli(["check", str(tmp_path / "missing.yaml")]) == 2


def test_cli_is_installed_as_a_command_and_never_prints_tracebacks(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    exe = os.path.join(os.path.dirname(sys.executable), "dspy-turbo")
    done = subprocess.run([exe, "check", str(bad)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "top level must be a mapping" in done.stderr and "Traceback" not in done.stderr


def test_schema_lists_installed_components(capsys):
    assert cli(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    tiers = schema["$defs"]["CacheSettings"]["properties"]["tiers"]["items"]["oneOf"]
    memory = next(t for t in tiers if t["title"] == "cache_backend:memory")
    assert {"max_bytes", "max_entries", "ttl", "name", "type"} <= set(memory["properties"])


# -- ttl: one meaning ----------------------------------------------------------------------


@pytest.mark.parametrize("config,path", [
    ({"cache": {"ttl": 0}}, "cache.ttl"),
    ({"cache": {"ttl": "0s"}}, "cache.ttl"),
    ({"cache": {"tiers": [{"type": "memory", "ttl": 0}]}}, "cache.tiers[0].ttl"),
    ({"cache": {"tiers": [{"type": "memory", "ttl": "0ms"}]}}, "cache.tiers[0].ttl"),
])
def test_a_ttl_of_zero_is_refused_with_what_to_write_instead(config, path):
    """0 meant "never expires" for cache.ttl and "never store" for a tier: it has no meaning now."""
    message = problems(config)[path]
    assert "more than 0" in message and "null" in message and "remove the tier" in message


def test_no_ttl_means_no_expiry_in_every_place(make_turbo):
    turbo = make_turbo({"cache": {"ttl": None, "tiers": [{"type": "memory", "ttl": None}]}})
    assert turbo.default_ttl is None and turbo.cache.tiers[0].ttl is None
    assert turbo.store("k", {"v": 1})
    assert turbo.cache.get("k").expires_at is None
    assert turbo.stats()["stores"] == {"memory": 1}
