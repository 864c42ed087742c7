"""A config keeps the embedded default for every section it leaves out: a namespace alone,
or a YAML without ``cache.tiers``, still gets the default memory -> file tiers, and a DSPy
program's answers survive into a new process through the file tier."""

import subprocess
import sys
import textwrap

import dspy_turbo


def _tiers(turbo):
    return [tier.backend.name for tier in turbo.cache.tiers]


def test_a_namespace_alone_keeps_the_default_tiers(make_turbo):
    with dspy_turbo.load() as embedded:
        assert _tiers(embedded) == ["memory", "file"]
    assert _tiers(make_turbo({"namespace": "x"})) == ["memory", "file"]
    assert _tiers(make_turbo({"cache": {"ttl": "1h"}})) == ["memory", "file"]  # a mapping merges key by key
    assert make_turbo({"cache": {"ttl": "1h"}}).default_ttl == 3600


def test_a_tiers_list_replaces_the_default_list(make_turbo):
    assert _tiers(make_turbo({"cache": {"tiers": [{"type": "memory"}]}})) == ["memory"]


def test_a_yaml_without_tiers_persists_across_processes(tmp_path):
    config = tmp_path / "turbo.yaml"
    config.write_text("namespace: defaults-kept\ncache:\n  ttl: 1d\n")
    program = textwrap.dedent(f"""
        import dspy, dspy_turbo
        from dspy_turbo.engines.offline import offline_lm
        lm = offline_lm("openai/gpt-4o-mini")
        dspy.configure(lm=lm)
        with dspy_turbo.load({str(config)!r}) as turbo:
            dspy.Predict("question -> answer")(question="kept on disk?")
            print([t.name for t in turbo.cache.tiers], lm.engine.calls)
    """)
    env_dir = tmp_path / "cache-dir"
    runs = [subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=180,
                           env={**__import__("os").environ, "DSPY_TURBO_CACHE_DIR": str(env_dir)})
            for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    assert runs[0].stdout.split() == ["['memory',", "'file']", "1"]
    assert runs[1].stdout.split()[-1] == "0"  # the second process was served from the file tier


def test_merge_rule():
    from dspy_turbo.host.config import over_default

    default = {"cache": {"tiers": [{"type": "memory"}, {"type": "file"}], "ttl": None}, "namespace": "d"}
    assert over_default({"cache": {"ttl": 5}}, default) == {"cache": {"tiers": default["cache"]["tiers"], "ttl": 5},
                                                            "namespace": "d"}
    assert over_default({"cache": {"tiers": []}}, default)["cache"]["tiers"] == []
    assert over_default({"cache": None}, default)["cache"] is None
