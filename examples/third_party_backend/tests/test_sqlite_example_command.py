"""The example plugin adds a subcommand (``dspy-turbo sqlite-compact``) through the
``dspy_turbo_commands`` hook, installed by its entry point like its backend: run through
the installed script."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import dspy_turbo
from dspy_turbo import Entry

EXE = str(Path(sys.executable).with_name("dspy-turbo"))


def run(*argv: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *argv], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", **env})


def test_the_plugin_command_is_listed_and_compacts_its_tier(tmp_path):
    db = tmp_path / "cache.db"
    config = tmp_path / "turbo.yaml"
    config.write_text(f"namespace: compacted\ncache:\n  tiers:\n    - {{type: sqlite, path: '{db}'}}\n")
    with dspy_turbo.load(config) as turbo:
        backend = turbo.cache.tiers[0].backend
        for i in range(200):
            backend.set(f"compacted:v2:{i:032x}", Entry.create({"text": "x" * 2000}), ttl=0.05 if i < 150 else None)
    time.sleep(0.1)
    size = db.stat().st_size

    listed = run("--help")
    assert "sqlite-compact" in listed.stdout
    done = run("sqlite-compact", "-c", str(config))
    assert done.returncode == 0, done.stderr
    assert f"sqlite: removed 150 expired entries; {db} is" in done.stdout
    assert db.stat().st_size < size
    assert run("ls", "-c", str(config), "--limit", "0").stdout.count("compacted:v2:") == 50

    memory = tmp_path / "memory.yaml"
    memory.write_text("cache: {tiers: [{type: memory}]}\n")
    refused = run("sqlite-compact", "-c", str(memory))
    assert refused.returncode == 1 and "has no sqlite tier" in refused.stderr
    assert "sqlite-compact" not in run("--help", DSPY_TURBO_PLUGINS="").stdout, "filtered out with its plugin"
