"""The inspection and transfer commands on a real file tier, through the installed
``dspy-turbo`` script: ls, show, stats, export, import; and export in bounded memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import dspy
import pytest
import yaml

import dspy_turbo
from dspy_turbo.cache.entry import Entry
from dspy_turbo.cli import main

EXE = str(Path(sys.executable).with_name("dspy-turbo"))
SECRET = "sk-live-0123456789abcdef"


def run(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.run([EXE, *argv], capture_output=True, text=True, timeout=180, env=env, input=stdin)


def config(tmp_path: Path, name: str, namespace: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"namespace": namespace, "cache": {"tiers": [
        {"type": "memory"}, {"type": "file", "directory": str(tmp_path / f"{name}-dir")}]}}))
    return path


@pytest.fixture
def lm(openai_server):
    """A real DSPy LM over HTTP whose API key must never show in what the commands print."""
    model = dspy.LM("openai/gpt-4o-mini", api_base=openai_server.url, api_key=SECRET)
    with dspy.context(lm=model, adapter=None):
        yield openai_server


@pytest.fixture
def filled(tmp_path, lm):
    """A config whose file tier holds three answers of a real DSPy program (one tagged)."""
    path = config(tmp_path, "source", "inspected")
    with dspy_turbo.load(path).install() as turbo:
        program = dspy.Predict("question -> answer")
        for q in ("What is DSPy?", "What is a tier?"):
            program(question=q)
        with turbo.tagged("faq"):
            program(question="What is a tag?")
        keys = [key for key, _ in turbo.cache.tiers[1].backend.entries(turbo.keys.prefix)]
    assert len(keys) == 3 and lm.calls == 3
    return path, keys


def test_ls_show_and_stats(filled, capsys):
    path, keys = filled
    listed = run("ls", "-c", str(path), "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert sorted(r["key"] for r in rows) == sorted(keys)
    assert {r["tier"] for r in rows} == {"file"} and {r["model"] for r in rows} == {"openai/gpt-4o-mini"}
    assert all(r["bytes"] > 0 and r["created_at"].endswith("Z") and r["expires_at"] == "never" for r in rows)
    # the same command in process, for the options
    assert main(["ls", "-c", str(path), "--tag", "faq", "--json"]) == 0
    tagged = capsys.readouterr().out
    assert len(tagged.splitlines()) == 1 and json.loads(tagged)["tags"] == ["faq"]
    assert main(["ls", "-c", str(path), "--limit", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1 + 2  # a header, then two
    assert main(["ls", "-c", str(path), "--tier", "nope"]) == 2
    assert "no tier named 'nope'" in capsys.readouterr().err

    shown = run("show", keys[0], "-c", str(path), "--json", "--value")
    assert shown.returncode == 0, shown.stderr
    envelope = json.loads(shown.stdout)
    assert envelope["key"] == keys[0] and envelope["tier"] == ["file"] and envelope["model"] == "openai/gpt-4o-mini"
    assert envelope["usage"]["total_tokens"] > 0 and envelope["cost"] > 0 and "value" in envelope
    assert main(["show", keys[0].rsplit(":", 1)[1], "-c", str(path)]) == 0  # the hash alone is enough
    plain = capsys.readouterr().out
    assert "model:" in plain and "expires_at:" in plain
    assert main(["show", "inspected:v2:" + "0" * 32, "-c", str(path)]) == 1
    everything = listed.stdout + shown.stdout + plain + tagged
    assert SECRET not in everything, "a credential of the call is never shown"

    stats = run("stats", "-c", str(path), "--json")
    assert stats.returncode == 0, stats.stderr
    figures = json.loads(stats.stdout)
    assert figures["tiers"]["file"]["entries"] == 3 and figures["tiers"]["file"]["bytes"] > 0
    assert figures["tiers"]["memory"]["entries"] == 0 and figures["running"] is None
    assert main(["stats", "-c", str(path)]) == 0
    assert "hit rates: no running process" in capsys.readouterr().out


def test_export_and_import_between_configs_through_the_script(filled, tmp_path, lm):
    path, keys = filled
    out = tmp_path / "cache.jsonl"
    done = run("export", "-c", str(path), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "exported 3 entries (file 3)" in done.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line) for line in lines)
    assert SECRET not in out.read_text()
    to_stdout = run("export", "-c", str(path))
    assert to_stdout.stdout == out.read_text(), "- (the default) writes the same lines to stdout"
    with_bar = run("export", "-c", str(path), "-o", str(tmp_path / "again.jsonl"), "--progress")
    assert with_bar.returncode == 0 and "exporting" in with_bar.stderr and "3/3" in with_bar.stderr, with_bar.stderr

    target = config(tmp_path, "target", "imported")
    done = run("import", str(out), "-c", str(target), "--tier", "file")
    assert done.returncode == 0, done.stderr
    assert "imported 3 entries (file 3)" in done.stdout
    assert run("import", "-", "-c", str(target), stdin=out.read_text()).returncode == 0  # stdin
    with dspy_turbo.load(target).install():
        calls = lm.calls
        program = dspy.Predict("question -> answer")
        for q in ("What is DSPy?", "What is a tier?", "What is a tag?"):
            program(question=q)
        assert lm.calls == calls, "the imported entries answered, under the target's namespace"
    bad = tmp_path / "bad.jsonl"
    bad.write_text("hello\n")
    refused = run("import", str(bad), "-c", str(target))
    assert refused.returncode == 1 and "line 1: not a dspy-turbo export" in refused.stderr and "Traceback" not in refused.stderr


def test_export_streams_in_bounded_memory(tmp_path):
    """8,000 entries of ~5 KB (40 MB of values) export with a small, constant peak."""
    path = config(tmp_path, "big", "big")
    turbo = dspy_turbo.load(path)
    try:
        backend = turbo.cache.tiers[1].backend
        value = {"text": "x" * 5000}
        for i in range(8_000):
            backend.set(f"{turbo.keys.prefix}{i:032x}", Entry.create(value))
        tracemalloc.start()
        report = turbo.export(tmp_path / "big.jsonl")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        turbo.close()
    assert report.entries == 8_000
    assert peak < 8 * 1024**2, f"peak {peak / 1024**2:.1f} MB for 40 MB of entries"
