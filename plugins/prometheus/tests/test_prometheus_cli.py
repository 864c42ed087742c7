"""Commands next to a running program: the program's prometheus sink holds its port, and
`dspy-turbo stats -c` (the same config) still runs, reading the hit rates from that sink."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dspy
import pytest
import yaml

import dspy_turbo

EXE = str(Path(sys.executable).with_name("dspy-turbo"))


def run(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.run([EXE, *argv], capture_output=True, text=True, timeout=180, env=env)


@pytest.mark.requires_plugin("file")
def test_stats_reads_the_running_programs_hit_rates_from_its_config(tmp_path, lm, unused_port):
    config = tmp_path / "turbo.yaml"
    config.write_text(yaml.safe_dump({"namespace": "prom-cli", "cache": {"tiers": [
        {"type": "memory"}, {"type": "file", "directory": str(tmp_path / "files")}]},
        "metrics": {"sinks": [{"type": "prometheus", "host": "127.0.0.1", "port": unused_port}]}}))
    turbo = dspy_turbo.load(config).install()
    try:
        program = dspy.Predict("question -> answer")
        for q in ("a", "b", "a", "a"):  # 2 misses, 2 memory hits
            program(question=q)
        assert turbo.flush_events(5)
        done = run("stats", "-c", str(config), "--json")
        assert done.returncode == 0, done.stderr
        figures = json.loads(done.stdout)
        assert figures["tiers"]["file"]["entries"] == 2
        running = figures["running"]
        assert running["url"] == f"http://127.0.0.1:{unused_port}/metrics" and "error" not in running, running
        assert running["lookups"] == 4 and running["hit_rate"] == 0.5 and running["hit_rate_by_tier"] == {"memory": 0.5}
        cleared = run("clear", "-c", str(config), "--tier", "file")  # the port is the program's: not bound again
        assert cleared.returncode == 0 and "file: removed 2 entries" in cleared.stdout, cleared.stderr
    finally:
        turbo.close()
    down = run("stats", "-c", str(config))
    assert down.returncode == 0 and f"http://127.0.0.1:{unused_port}/metrics: cannot reach" in down.stdout, down.stdout


def test_top_is_this_plugins_command_with_help(capsys):
    from dspy_turbo.cli import build_cli, main

    assert build_cli().owners["top"] == "prometheus"
    assert main(["top", "--help"]) == 0
    assert "dspy-turbo top" in capsys.readouterr().out
