"""``dspy-turbo schema`` is a valid JSON Schema (Draft 2020-12) that editors can use: it
accepts every config the docs and examples show (durations and sizes with units, routing
and batching blocks, ${VAR} interpolation) and rejects a misspelt key at any level."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from dspy_turbo.host.config import ConfigError, parse
from dspy_turbo.host.plugin_manager import build_registry, make_plugin_manager

# The documented configs use every distribution of the repository.
pytestmark = pytest.mark.requires_plugin("file", "redis", "prometheus", "logsink", "batching", "faiss")

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def registry():
    return build_registry(make_plugin_manager())


@pytest.fixture(scope="module")
def validator():
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("dspy-turbo")
    done = subprocess.run([str(exe), "schema"], capture_output=True, text=True, timeout=120, check=True)
    schema = json.loads(done.stdout)
    jsonschema.Draft202012Validator.check_schema(schema)  # a valid schema of its dialect
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "*****" not in done.stdout, "a default shown masked tells an editor nothing"
    return jsonschema.Draft202012Validator(schema)


def _documented() -> list[tuple[str, dict]]:
    """Every YAML config in the docs, READMEs and examples that is a whole document."""
    found = []
    pages = [*REPO.glob("docs/**/*.md"), REPO / "README.md", *REPO.glob("plugins/*/README.md"), *REPO.glob("examples/**/*.md")]
    for page in sorted(p for p in pages if "_drafts" not in p.parts):
        for i, block in enumerate(re.findall(r"```ya?ml\n(.*?)```", page.read_text(encoding="utf-8"), re.S)):
            doc = yaml.safe_load(block)
            if isinstance(doc, dict):
                found.append((f"{page.relative_to(REPO)}#{i}", doc))
    for path in sorted([*REPO.glob("examples/*.yaml"), *REPO.glob("examples/*/*.yaml")]):
        found.append((str(path.relative_to(REPO)), yaml.safe_load(path.read_text(encoding="utf-8"))))
    return found


DOCUMENTED = _documented()


def test_the_docs_have_configs_to_check():
    names = " ".join(name for name, _ in DOCUMENTED)
    assert len(DOCUMENTED) >= 20 and "examples/turbo.yaml" in names and "routing" in json.dumps([d for _, d in DOCUMENTED])


@pytest.mark.parametrize("name,doc", DOCUMENTED, ids=[n for n, _ in DOCUMENTED])
def test_the_schema_agrees_with_load_on_every_documented_config(name, doc, validator, registry, monkeypatch):
    """What load() accepts, the schema accepts; the docs' deliberate mistakes and fragments
    (a misspelt key, a section shown alone) are refused by both."""
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
    try:
        parse(doc, registry)
    except ConfigError as exc:
        assert errors, f"{name}: load() refuses it ({exc.issues[0]}) but the schema accepts it"
        return
    assert errors == [], f"{name}: the schema refuses a config load() accepts"


@pytest.mark.parametrize("doc", [
    {"cache": {"ttl": "7d", "tiers": [{"type": "memory", "max_bytes": "256MB", "ttl": "90s"},
                                      {"type": "file", "max_bytes": "10GB", "ttl": "7d"}]}},
    {"cache": {"tiers": [{"type": "redis", "url": "${REDIS_URL}", "ttl": "7d", "timeout": "50ms"}]}},
    {"routing": {"type": "complexity", "tiers": [{"name": "small", "model": "openai/gpt-4o-mini"},
                                                 {"name": "large", "model": "openai/gpt-4o"}]}},
    {"batching": {"type": "async", "max_concurrency": 16, "rate_limit": {"requests_per_minute": 500}}},
    {"namespace": "${NS:-app}", "cache": {"ttl": "${TTL:-1h}", "tiers": [{"type": "memory", "max_bytes": 1048576}]}},
])
def test_units_nested_definitions_and_interpolation_are_accepted(doc, validator, registry, monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    parse(doc, registry)  # load() takes it
    assert [e.message for e in validator.iter_errors(doc)] == []


def _misspelt(doc: dict) -> list[tuple[str, dict]]:
    """Copies of ``doc`` with one key misspelt (a letter doubled), at every mapping in it."""
    out = []

    def walk(node, path):
        if isinstance(node, dict):
            for key in node:
                if key == "type":
                    continue
                bad = copy.deepcopy(doc)
                target = bad
                for part in path:
                    target = target[part]
                target[key + key[-1]] = target.pop(key)
                out.append(("/".join(map(str, [*path, key])), bad))
                walk(node[key], [*path, key])
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, [*path, i])

    walk(doc, [])
    return out


def test_a_misspelt_key_anywhere_is_rejected(validator, registry):
    doc = {"namespace": "app", "cache": {"ttl": "1d", "breaker": {"failures": 3},
                                         "tiers": [{"type": "memory", "max_bytes": "64MB"}, {"type": "file", "ttl": "7d"}]},
           "routing": {"type": "complexity", "tiers": [{"name": "small", "model": "openai/gpt-4o-mini"}]},
           "metrics": {"queue_size": 10}}
    assert not list(validator.iter_errors(doc))
    cases = _misspelt(doc)
    assert len(cases) >= 12
    for where, bad in cases:
        assert list(validator.iter_errors(bad)), f"the schema accepts a misspelt key at {where}"
        with pytest.raises(ConfigError):
            parse(bad, registry)
