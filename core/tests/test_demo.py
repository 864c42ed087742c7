"""The main job, small: a real DSPy program cold then warm through the CLI."""

import json

from dspy_turbo.cli import main as cli


def test_demo_warm_run_makes_no_lm_calls_and_repeats_the_answers(capsys):
    assert cli(["demo", "--questions", "20", "--latency", "0.05", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    cold, warm, demo = report["cold"], report["warm"], report["demo"]
    assert cold["lm_calls"] == demo["engine_calls"]["cold"] > 0
    assert warm["lm_calls"] == demo["engine_calls"]["warm"] == 0
    assert warm["hit_rate"] == 1.0 and warm["misses"] == 0
    assert warm["dollars"]["saved"] > 0 and warm["dollars"]["spent"] == 0
    assert demo["mismatches"] == 0


def test_demo_prints_a_table(capsys):
    assert cli(["demo", "--questions", "8", "--latency", "0"]) == 0
    out = capsys.readouterr().out
    for row in ("wall time", "LM calls", "cache hit rate", "$ saved"):
        assert row in out
