"""The ``dspy-turbo`` command group: how subcommands are collected and how they end.

Every subcommand, the core's own included, is added through the ``dspy_turbo_commands``
hook (``dspy_turbo.cli.builtin`` for the core's), as simonw/llm's ``register_commands``.
A command returns its exit code; errors are messages, never tracebacks; 2 is bad input.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..host.config import ConfigError
from ..host.plugin_manager import KNOWN_COMMANDS, PluginError, Registry, make_plugin_manager, unloaded
from ..host.redaction import redact_text

PROG = "dspy-turbo"
CONFIG_ENV = "DSPY_TURBO_CONFIG"
DEFAULT_CONFIG = "turbo.yaml"
CONFIG_HELP = (f"the YAML config (default: ${CONFIG_ENV}, else ./{DEFAULT_CONFIG} when it exists, "
               "else the embedded default: memory and file tiers)")


def resolve_config(value: str | None) -> str | None:
    """The config a command reads: the one given, else ``./turbo.yaml`` when there is one,
    else ``None`` (the embedded default). One rule for every command."""
    if value:
        return value
    return DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file() else None


def config_option(function: Callable) -> Callable:
    """``-c/--config PATH`` with the one default (see :func:`resolve_config`); the command
    receives ``config``: a path, or ``None`` for the embedded default."""
    return click.option("-c", "--config", "config", metavar="PATH", envvar=CONFIG_ENV, default=None,
                        callback=lambda ctx, param, value: resolve_config(value), help=CONFIG_HELP)(function)


class CommandGroup(click.Group):
    """The top-level group. A plugin adding a name that is taken is refused with a message
    naming both, and keeps the first; commands are listed in the order they were added."""

    config_option = staticmethod(config_option)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.owners: dict[str, str] = {}
        self.adding: str = "dspy_turbo.cli"
        self.problems: list[str] = []
        self.pm = None

    @staticmethod
    def load(config: str | None, *, semantic: bool = False):
        """The Turbo a command works on: not installed into DSPy, without the config's metric
        sinks (a running program may hold their ports, and a command's lookups are not its
        traffic) and, unless ``semantic``, without the components of plugins' sections (the semantic
        cache's index and embedder: no model to load)."""
        from dataclasses import replace

        from ..host.config import parse
        from ..host.plugin_manager import build_registry
        from ..host.turbo import Turbo

        pm = make_plugin_manager()
        registry = build_registry(pm)
        parsed = parse(config, registry)
        parsed = replace(parsed, sinks=(), **({} if semantic else {"components": {}}))  # no section's component
        return Turbo(parsed, pm, registry)

    @staticmethod
    def parse(config: str | None):
        """The validated config a command works on, nothing built (``dspy-turbo calibrate`` reads
        ``config.section(path)`` and ``config.component(path)``, the spec of a section's component)."""
        from ..host.config import parse
        from ..host.plugin_manager import build_registry

        return parse(config, build_registry(make_plugin_manager()))

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        name = name or cmd.name
        if name in self.commands:
            self.problems.append(f"plugin {self.adding!r} adds the command {name!r}, which plugin "
                                 f"{self.owners[name]!r} already added; it is left out")
            return
        super().add_command(cmd, name)
        self.owners[name] = self.adding

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name = args[0] if args else None
        package = KNOWN_COMMANDS.get(name) if name not in self.commands else None
        if package is not None:  # a plugin's command: say which one, and why it is not here
            why = Registry(unloaded=unloaded(self.pm)).why_missing(package) if self.pm else None
            ctx.fail(f"No such command {name!r}. It comes with the {package} plugin: "
                     + (why or f"pip install {package}"))
        return super().resolve_command(ctx, args)


def _version() -> str:
    from .. import __version__

    return __version__


def build_cli(pm=None) -> CommandGroup:
    """The group with every installed plugin's commands (``dspy_turbo_commands``)."""
    group = CommandGroup(name=PROG, help="dspy-turbo: caching and performance for DSPy programs.\n\n"
                         "Errors are messages, never tracebacks; exit code 2 means bad input.",
                         context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
    group.params.append(click.Option(["--version"], is_flag=True, expose_value=False, is_eager=True,
                                     help="print the version and exit",
                                     callback=_print_version))
    if pm is None:
        try:
            pm = make_plugin_manager()
        except PluginError as exc:  # the core's commands still work (they report it when they load plugins)
            group.problems.append(f"plugin error: {exc}; only the core's commands are available")
            pm = make_plugin_manager(entry_points=False)
    group.pm = pm
    for impl in pm.hook.dspy_turbo_commands.get_hookimpls():  # in registration order: the core first
        group.adding = impl.plugin_name
        try:
            impl.function(**{name: group for name in impl.argnames})
        except Exception as exc:
            group.problems.append(f"plugin {impl.plugin_name!r}: dspy_turbo_commands raised "
                                  f"{type(exc).__name__}: {exc}; its commands are left out")
    return group


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"{PROG} {_version()}")
        ctx.exit(0)


def main(argv: list[str] | None = None) -> int:
    """Run the command line (``argv`` without the program name); returns the exit code."""
    try:
        group = build_cli()
        for problem in group.problems:
            click.echo(f"warning: {redact_text(problem)}", err=True)
        code = group.main(args=list(sys.argv[1:] if argv is None else argv), prog_name=PROG,
                          standalone_mode=False, complete_var="_DSPY_TURBO_COMPLETE")
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code if isinstance(code, int) else 0
    except BrokenPipeError:
        # `dspy-turbo ls | head`: the reader left. Quiet, as other tools are; stdout is
        # pointed at /dev/null so the interpreter's final flush does not complain either.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 141  # 128 + SIGPIPE, what a shell reports for a writer killed by it
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("aborted", err=True)
        return 1
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        return 2
    except PluginError as exc:
        click.echo(f"plugin error: {exc}", err=True)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the promise is a message, never a traceback (nor a URL's password)
        click.echo(redact_text(f"error: {type(exc).__name__}: {exc}"), err=True)
        return 2
