"""The command line as a user meets it: one -c/--config with one default, help on every
option and argument, --version, shell completion, quiet when piped into head, a stable
``plugins`` listing. Run through the installed ``dspy-turbo`` script where it matters."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
import yaml

from dspy_turbo import __version__
from dspy_turbo.cli import build_cli, main

EXE = str(Path(sys.executable).with_name("dspy-turbo"))
# The commands that work on a config: each must take it the same way.
# (calibrate comes with dspy-turbo-faiss: its tests check it takes the config the same way)
CONFIG_COMMANDS = {"check", "stats", "ls", "show", "export", "import", "clear", "route"}


def run(*argv: str, cwd=None, env=None, **kwargs) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", **(env or {})}
    return subprocess.run([EXE, *argv], capture_output=True, text=True, timeout=120, cwd=cwd, env=full_env, **kwargs)


def test_every_config_command_takes_one_config_option_with_one_default():
    group = build_cli()
    assert CONFIG_COMMANDS <= set(group.commands), sorted(group.commands)
    helps = set()
    for name in sorted(CONFIG_COMMANDS):
        options = [p for p in group.commands[name].params if isinstance(p, click.Option) and "--config" in p.opts]
        assert len(options) == 1, f"{name}: no -c/--config"
        assert options[0].opts == ["-c", "--config"], f"{name}: {options[0].opts}"
        helps.add(options[0].help)
    assert len(helps) == 1, f"the config option is described differently: {helps}"


def test_every_option_and_argument_has_help():
    group = build_cli()
    for name, command in group.commands.items():
        assert command.help and command.help.strip(), f"{name}: no help"
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help and param.help.strip(), f"{name} {param.opts}: no help"
            elif isinstance(param, click.Argument):
                label = param.human_readable_name.strip("[]").upper()
                assert f"{label}:" in command.help, f"{name}: argument {label} is not described in its help"


def test_check_without_a_file_uses_the_one_default(tmp_path, monkeypatch, capsys):
    """Before, `check` required a file while `route` defaulted to turbo.yaml and `clear` to the
    embedded default; now each reads -c, else $DSPY_TURBO_CONFIG, else ./turbo.yaml, else the default."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DSPY_TURBO_CONFIG", raising=False)
    assert main(["check"]) == 0
    assert "OK: <default>" in capsys.readouterr().out
    (tmp_path / "turbo.yaml").write_text(yaml.safe_dump({"routing": {"type": "complexity", "tiers": [
        {"name": "small", "model": "openai/gpt-4o-mini"}, {"name": "large", "model": "openai/gpt-4o"}]}}))
    assert main(["check"]) == 0
    assert "OK: turbo.yaml" in capsys.readouterr().out
    assert main(["route", "What is the capital of Chile?"]) == 0  # the same file, found the same way
    assert "tier: small" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("cache: {tiers: [{type: memroy}]}\n")
    monkeypatch.setenv("DSPY_TURBO_CONFIG", str(bad))
    for argv in (["check"], ["route", "hi"], ["clear"], ["ls"]):
        assert main(argv) == 2, argv
        assert "cache.tiers[0].type" in capsys.readouterr().err
    assert main(["check", "-c", str(tmp_path / "turbo.yaml")]) == 0  # -c wins over the environment


def test_version_from_the_script_and_python_m():
    done = run("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"dspy-turbo {__version__}"
    module = subprocess.run([sys.executable, "-m", "dspy_turbo", "--version"], capture_output=True, text=True, timeout=120)
    assert module.returncode == 0 and module.stdout.strip() == f"dspy-turbo {__version__}"


def test_shell_completion():
    done = run(env={"_DSPY_TURBO_COMPLETE": "bash_complete", "COMP_WORDS": "dspy-turbo ch", "COMP_CWORD": "1"})
    assert done.returncode == 0 and "plain,check" in done.stdout.split()
    options = run(env={"_DSPY_TURBO_COMPLETE": "bash_complete", "COMP_WORDS": "dspy-turbo ls --ti", "COMP_CWORD": "2"})
    assert "plain,--tier" in options.stdout.split()
    script = run("completion", "bash")
    assert script.returncode == 0 and "_DSPY_TURBO_COMPLETE=bash_complete" in script.stdout and "complete " in script.stdout


def test_piped_into_head_ends_quietly():
    """`dspy-turbo schema | head -1`: the reader leaves after a line; no BrokenPipeError, no traceback."""
    done = subprocess.run(f"{EXE} schema | head -1", shell=True, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    assert done.stdout.strip() == "{"
    assert "BrokenPipe" not in done.stderr and "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr


def test_plugins_are_listed_in_the_same_order_on_every_run():
    outputs = {run("plugins", env={"PYTHONHASHSEED": str(seed)}).stdout for seed in (1, 2)}
    assert len(outputs) == 1, outputs
    names = [line.split()[0] for line in outputs.pop().splitlines() if line and not line.startswith(" ")]
    assert names[0] == "dspy_turbo.builtin" and names[1:] == sorted(names[1:])


def test_a_bad_argument_is_a_message_with_exit_code_2(capsys):
    assert main(["ls", "--limit", "-3"]) == 2
    err = capsys.readouterr().err
    assert "--limit" in err and "Traceback" not in err
    assert main(["no-such-command"]) == 2
    assert "No such command" in capsys.readouterr().err


def test_a_plugins_command_without_the_plugin_says_what_to_install(monkeypatch, capsys):
    """`dspy-turbo top` comes with dspy-turbo-prometheus: without it loaded, the error says so."""
    import importlib.util

    monkeypatch.setenv("DSPY_TURBO_PLUGINS", "")  # no plugin loads: as with only the core installed
    assert main(["top", "--once", "--url", "http://127.0.0.1:9/metrics"]) == 2
    err = capsys.readouterr().err
    assert "No such command 'top'. It comes with the dspy-turbo-prometheus plugin:" in err, err
    if importlib.util.find_spec("dspy_turbo_prometheus") is None:
        assert "pip install dspy-turbo-prometheus" in err, err
    else:
        assert "dspy-turbo-prometheus is installed, but its plugin 'prometheus' is left out by DSPY_TURBO_PLUGINS=" in err, err
    assert "Traceback" not in err


def test_calibrate_without_the_faiss_plugin_says_what_to_install(monkeypatch, capsys):
    """`dspy-turbo calibrate` moved into dspy-turbo-faiss with the semantic cache."""
    import importlib.util

    monkeypatch.setenv("DSPY_TURBO_PLUGINS", "")  # no plugin loads: as with only the core installed
    assert main(["calibrate", "--pairs", "pairs.jsonl"]) == 2
    err = capsys.readouterr().err
    assert "No such command 'calibrate'. It comes with the dspy-turbo-faiss plugin:" in err, err
    if importlib.util.find_spec("dspy_turbo_faiss") is None:
        assert "pip install dspy-turbo-faiss" in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("old", ["semantic", "guards", "judge", "calibration", "verifier", "replication", "micro_batcher",
                                 "features.semantic"])
def test_the_moved_semantic_modules_import_no_plugin(old):
    """The semantic cache moved into dspy-turbo-faiss; importing an old path loads nothing of it."""
    code = f"import sys, dspy_turbo, dspy_turbo.{old}; print('dspy_turbo_faiss' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "DSPY_TURBO_PLUGINS": ""})
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stdout + done.stderr


def test_the_moved_semantic_cache_without_its_plugin_says_what_to_install(monkeypatch):
    import dspy_turbo.host.config as config
    import dspy_turbo.semantic as old

    monkeypatch.setitem(sys.modules, "dspy_turbo_faiss", None)  # as if not installed: importing it fails
    monkeypatch.delitem(sys.modules, "dspy_turbo_faiss.semantic", raising=False)
    monkeypatch.delitem(sys.modules, "dspy_turbo_faiss.feature", raising=False)
    with pytest.warns(DeprecationWarning), pytest.raises(ImportError, match="pip install dspy-turbo-faiss"):
        old.SemanticCache  # noqa: B018
    with pytest.warns(DeprecationWarning), pytest.raises(ImportError, match="pip install dspy-turbo-faiss"):
        config.SemanticSettings  # noqa: B018


def test_stats_url_without_a_sink_that_reads_it_says_what_to_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("DSPY_TURBO_PLUGINS", "")
    config = tmp_path / "turbo.yaml"
    config.write_text(yaml.safe_dump({"cache": {"tiers": [{"type": "memory"}]}}))
    assert main(["stats", "-c", str(config), "--url", "http://127.0.0.1:9/metrics"]) == 0  # the tiers' figures still print
    out = capsys.readouterr().out
    assert "hit rates: http://127.0.0.1:9/metrics: no installed metric sink reads a running process " \
           "(pip install dspy-turbo-prometheus)" in out, out


def test_the_moved_dashboard_module_imports_no_plugin():
    """`dspy_turbo.dashboard` moved into dspy-turbo-prometheus; importing the old path loads nothing of it."""
    code = "import sys, dspy_turbo, dspy_turbo.dashboard; print('dspy_turbo_prometheus' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stdout + done.stderr


def test_the_moved_dashboard_without_its_plugin_says_what_to_install(monkeypatch):
    import dspy_turbo.dashboard as old

    monkeypatch.setitem(sys.modules, "dspy_turbo_prometheus", None)  # as if not installed: importing it fails
    monkeypatch.delitem(sys.modules, "dspy_turbo_prometheus.dashboard", raising=False)
    with pytest.warns(DeprecationWarning), pytest.raises(ImportError, match="pip install dspy-turbo-prometheus"):
        old.Dashboard  # noqa: B018


@pytest.mark.parametrize("command", sorted(CONFIG_COMMANDS | {"plugins", "schema", "demo", "completion"}))
def test_every_command_has_help(command, capsys):
    assert main([command, "--help"]) == 0
    assert f"dspy-turbo {command}" in capsys.readouterr().out


def test_clear_says_a_memory_tier_is_each_programs_own_instead_of_removed_0(tmp_path, capsys):
    """A command's memory tier starts empty: "memory: removed 0" said nothing true (17.14)."""
    config = tmp_path / "turbo.yaml"
    config.write_text("namespace: cleared\ncache: {tiers: [{type: memory}]}\n")
    assert main(["clear", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "removed 0" not in out
    assert out.strip() == ("memory: in each program's own memory, not here; a running program keeps them until it "
                           "restarts or calls turbo.invalidate()")
