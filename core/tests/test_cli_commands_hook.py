"""Plugins add subcommands through ``dspy_turbo_commands`` (as llm's ``register_commands``);
the core's own commands come the same way. Plugins are registered for the test only."""

from __future__ import annotations

import click

import dspy_turbo
from dspy_turbo.cli import build_cli
from dspy_turbo.host.plugin_manager import make_plugin_manager


class Greeter:
    """A plugin with one command that reads the config the way the core's do."""

    @dspy_turbo.hookimpl
    def dspy_turbo_commands(self, cli):
        @cli.command(help="Say which namespace the config uses.")
        @cli.config_option
        @click.option("--shout", is_flag=True, help="in capitals")
        def hello(config, shout):
            turbo = cli.load(config)
            try:
                text = f"hello from {turbo.namespace}"
            finally:
                turbo.close()
            click.echo(text.upper() if shout else text)
            return 0


class Squatter:
    @dspy_turbo.hookimpl
    def dspy_turbo_commands(self, cli):
        @cli.command(help="Takes a name the core uses.")
        def check():
            return 7

        @cli.command(help="A name of its own.")
        def mine():
            return 0


class Broken:
    @dspy_turbo.hookimpl
    def dspy_turbo_commands(self, cli):
        raise RuntimeError("cannot start")


def _run(group, argv):
    return group.main(argv, prog_name="dspy-turbo", standalone_mode=False)


def test_a_plugin_adds_a_command_that_reads_the_config(tmp_path, capsys):
    config = tmp_path / "turbo.yaml"
    config.write_text("namespace: greeted\ncache: {tiers: [{type: memory}]}\n")
    group = build_cli(make_plugin_manager([Greeter()]))
    assert "hello" in group.commands and group.owners["hello"] == "Greeter"
    assert group.owners["check"] == "dspy_turbo.builtin", "the core's commands come through the same hook"
    assert _run(group, ["hello", "-c", str(config), "--shout"]) == 0
    assert capsys.readouterr().out.strip() == "HELLO FROM GREETED"


def test_a_taken_name_is_refused_and_a_raising_plugin_loses_only_its_commands(tmp_path, capsys):
    group = build_cli(make_plugin_manager([Squatter(), Broken()]))
    assert any("'Squatter' adds the command 'check'" in p and "'dspy_turbo.builtin'" in p for p in group.problems), group.problems
    assert any("'Broken'" in p and "RuntimeError: cannot start" in p for p in group.problems), group.problems
    assert "mine" in group.commands
    good = tmp_path / "ok.yaml"
    good.write_text("cache: {tiers: [{type: memory}]}\n")
    assert _run(group, ["check", "-c", str(good)]) == 0, "the core's check stays"
    assert "OK:" in capsys.readouterr().out


def test_the_hook_is_a_documented_spec():
    pm = make_plugin_manager()
    spec = pm.hook.dspy_turbo_commands.spec
    assert spec is not None and "click" in (spec.function.__doc__ or "")
