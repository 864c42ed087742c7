"""The ``dspy-turbo`` command line: a click group whose subcommands, the core's own
included, come through the ``dspy_turbo_commands`` hook (see ``app``).

``main(argv)`` runs it and returns the exit code (the console script and
``python -m dspy_turbo`` call it); ``build_cli()`` is the assembled group (the docs
generate the CLI reference from it).
"""

from __future__ import annotations

from .app import CommandGroup, build_cli, config_option, main, resolve_config

__all__ = ["CommandGroup", "build_cli", "config_option", "main", "resolve_config"]
