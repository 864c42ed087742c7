"""ls, show and export on a real Redis tier, through the installed script: the namespace's
entries only (SCAN with the prefix, never KEYS), tag indexes and other namespaces left out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dspy
import redis
import yaml

import dspy_turbo

EXE = str(Path(sys.executable).with_name("dspy-turbo"))


def run(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.run([EXE, *argv], capture_output=True, text=True, timeout=180, env=env)


def _calls(client, command: str) -> int:
    return int(client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


def test_ls_show_and_export_list_the_namespace_with_scan(tmp_path, redis_url, namespace, lm):
    prefix = f"{namespace}-cli:"

    def write(name: str, ns: str) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"namespace": ns, "cache": {"tiers": [
            {"type": "memory"}, {"type": "redis", "url": redis_url, "prefix": prefix}]}}))
        return path

    mine, other = write("mine", namespace), write("other", f"{namespace}x")
    program = dspy.Predict("question -> answer")
    with dspy_turbo.load(mine).install() as turbo:
        with turbo.tagged("faq"):  # a tag index set lives next to the entries
            program(question="first")
        program(question="second")
    with dspy_turbo.load(other).install():
        program(question="not mine")
    client = redis.Redis.from_url(redis_url)
    try:
        keys_before, scans_before = _calls(client, "keys"), _calls(client, "scan")
        listed = run("ls", "-c", str(mine), "--json")
        assert listed.returncode == 0, listed.stderr
        rows = [json.loads(line) for line in listed.stdout.splitlines()]
        assert len(rows) == 2 and {r["tier"] for r in rows} == {"redis"}
        assert all(r["key"].startswith(f"{namespace}:v") for r in rows), "only this namespace's entries"
        assert sorted(tuple(r["tags"]) for r in rows) == [(), ("faq",)]
        exported = run("export", "-c", str(mine))
        assert exported.returncode == 0 and "exported 2 entries (redis 2)" in exported.stderr
        assert sorted(json.loads(line)["key"] for line in exported.stdout.splitlines()[1:]) == sorted(r["key"] for r in rows)
        shown = run("show", rows[0]["key"], "-c", str(mine), "--json")
        assert shown.returncode == 0 and json.loads(shown.stdout)["tier"] == ["redis"]
        assert _calls(client, "keys") == keys_before, "KEYS was used"
        assert _calls(client, "scan") > scans_before
    finally:
        for key in client.scan_iter(match=prefix + "*"):
            client.unlink(key)
        client.close()
