"""The core's subcommands, added through the ``dspy_turbo_commands`` hook like a plugin's.

Configuration and plugins: ``plugins``, ``check``, ``schema``, ``completion``; the cache:
``stats``, ``ls``, ``show`` (``inspect``), ``export``, ``import`` (``transfer``), ``clear``;
the rest: ``route``, ``demo``. (``top`` comes with dspy-turbo-prometheus, ``calibrate`` with dspy-turbo-faiss.)
"""

from __future__ import annotations

import json
import os

import click

from . import inspect, transfer
from .app import CommandGroup, config_option


def register(cli: CommandGroup) -> None:
    for command in (plugins, check, schema, inspect.stats, inspect.ls, inspect.show, transfer.export_command,
                    transfer.import_command, clear, route, demo, completion):
        cli.add_command(command)


def _registry():
    from ..host.plugin_manager import build_registry, make_plugin_manager

    pm = make_plugin_manager()
    return pm, build_registry(pm)


def _offline_prices() -> None:
    """Price from DSPy's bundled table: a command never waits on a network fetch (set it to False to refresh)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@click.command(help="List the installed plugins.\n\nEach with its distribution and version, hooks and components, built-ins first.")
def plugins() -> int:
    from ..host.plugin_manager import describe

    pm, registry = _registry()
    for info in describe(pm, registry):
        dist = f"{info.distribution} {info.version}" if info.distribution else "(not from a distribution)"
        click.echo(f"{info.name}  [{dist}]")
        click.echo(f"  hooks: {', '.join(info.hooks) or '-'}")
        for kind, names in sorted(info.components.items()):
            click.echo(f"  {kind}: {', '.join(names)}")
    return 0


@click.command(help="Validate a config as load() does.\n\nPrints OK (exit 0) or every problem with its YAML path (exit 2).\n\nFILE: the config to check, the same as -c FILE.")
@config_option
@click.argument("file", required=False, metavar="[FILE]")
def check(config: str | None, file: str | None) -> int:
    from ..host.config import parse

    _offline_prices()  # the price check of routed models
    _, registry = _registry()
    source = file or config
    checked = parse(source, registry)  # what load() validates, component availability included
    for issue in checked.warnings:
        click.echo(f"warning: {issue}", err=True)
    click.echo(f"OK: {source or '<default>'}")
    return 0


@click.command(help="Print the config's JSON Schema.\n\nDraft 2020-12, with the installed components' options; for editors (yaml-language-server).")
def schema() -> int:
    from ..host.config import json_schema

    _, registry = _registry()
    click.echo(json.dumps(json_schema(registry), indent=2))
    return 0


@click.command(help="Remove a namespace's entries.\n\nAll of them or only those with a tag, from every tier or one.")
@config_option
@click.option("--tier", metavar="NAME", default=None, help="only this tier (by its name in the config)")
@click.option("--tag", metavar="TAG", default=None, help="only entries with this tag (see turbo.tagged)")
@click.option("--namespace", metavar="NS", default=None, help="another namespace than the config's")
def clear(config: str | None, tier: str | None, tag: str | None, namespace: str | None) -> int:
    turbo = CommandGroup.load(config, semantic=True)  # the namespace's vectors go with its entries
    errors: dict[str, str] = {}
    turbo.bus.add("cli", lambda e: errors.setdefault(e.tier or "?", e.error or "") if e.kind == "error" else None)
    try:
        removed = turbo.invalidate(namespace=namespace, tag=tag, tier=tier)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    finally:
        turbo.close()
    what = f"entries tagged {tag!r}" if tag else "entries"
    namespace = namespace or turbo.namespace
    # A tier in this process's memory starts empty here: its count says nothing. The entries
    # are in each running program's own memory tier, which this cannot reach, except through
    # a shared tier's invalidation log (the invalidation feed).
    reaches = turbo.features.get("invalidations") is not None
    for t in turbo.cache.tiers:
        if tier not in (None, t.name):
            continue
        count = removed.get(t.name)
        if count is None:
            click.echo(f"{t.name}: FAILED: {errors.get(t.name, 'unavailable')}")
        elif t.backend_in_process:
            click.echo(f"{t.name}: in each program's own memory, not here; " +
                       ("running programs drop them within cache.sync_interval (told through the shared tier)"
                        if reaches else "a running program keeps them until it restarts or calls turbo.invalidate()"))
        else:
            click.echo(f"{t.name}: removed {count} {what} of namespace {namespace!r}")
    tiers = {t.name for t in turbo.cache.tiers}
    for name, count in removed.items():  # what features removed of their own (the semantic cache's vectors)
        if name not in tiers:
            click.echo(f"{name}: removed {count}")
    return 0 if all(removed.get(t.name) is not None for t in turbo.cache.tiers if tier in (None, t.name)) else 1


@click.command(help="Explain the routing decision for a prompt.\n\nWhich tier and model the config's routing section picks, and why (no LM call).\n\nPROMPT: the text to route, as the last user message of a request.")
@click.argument("prompt")
@config_option
@click.option("--tier", default=None, metavar="NAME", help="a tier hint, as a call's tier= argument")
@click.option("--json", "as_json", is_flag=True, help="print the explanation as JSON")
def route(prompt: str, config: str | None, tier: str | None, as_json: bool) -> int:
    _offline_prices()
    turbo = CommandGroup.load(config)  # not installed: explaining makes no LM call
    try:
        explanation = turbo.router().explain(prompt, **({"tier": tier} if tier else {}))
    finally:
        turbo.close()
    if as_json:
        click.echo(json.dumps(explanation, indent=2))
        return 0
    score = "-" if explanation["score"] is None else f"{explanation['score']:.3f}"
    click.echo(f"tier: {explanation['tier']}  model: {explanation['model']}  score: {score}  "
               f"decided by: {explanation['source']}" + (f"  priority: {explanation['priority']}" if explanation["priority"] else ""))
    if explanation["features"]:
        click.echo("features: " + ", ".join(f"{k}={v:g}" for k, v in explanation["features"].items()))
    click.echo("tiers:")
    for t in explanation["tiers"]:
        cost = "unpriced" if t["estimated_cost"] is None else f"${t['estimated_cost']:.6f}"
        mark = "->" if t["name"] == explanation["tier"] else "  "
        click.echo(f"  {mark} {t['name']:<10} {t['model']:<40} scores {t['scores']:<8} est. {cost}")
    if explanation["budget"]:
        b = explanation["budget"]
        click.echo(f"budget: ${b['spent']:.4f} of ${b['limit']:.2f} spent; on exceeded: {b['on_exceeded']}")
    return 0


@click.command(help="Run the cold/warm demo.\n\nA DSPy question-answering program over the offline LM, cold then warm, with a before/after table.")
@click.option("--questions", type=click.IntRange(min=1), default=100, show_default=True, metavar="N",
              help="how many questions, about 10% of them repeated")
@click.option("--latency", type=click.FloatRange(min=0), default=0.4, show_default=True, metavar="SECONDS",
              help="the offline LM's latency per call, +/-25%")
@click.option("--threads", type=click.IntRange(min=1), default=16, show_default=True, metavar="N",
              help="DSPy's parallel runner threads")
@click.option("-c", "--config", metavar="PATH", default=None,
              help="a config to run it with (default: the embedded default in a fresh directory, so the first run is cold)")
@click.option("--json", "as_json", is_flag=True, help="print the cold and warm stats as JSON instead of the table")
def demo(questions: int, latency: float, threads: int, config: str | None, as_json: bool) -> int:
    from . import demo as demo_module

    argv = ["--questions", str(questions), "--latency", repr(latency), "--threads", str(threads)]
    argv += ["--config", config] if config else []
    return demo_module.main(argv + (["--json"] if as_json else []))


@click.command(help="Print the shell completion script.\n\nFor bash: eval \"$(dspy-turbo completion bash)\" (zsh and fish likewise).\n\nSHELL: bash (the default), zsh or fish.")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]), default="bash")
def completion(shell: str) -> int:
    from click.shell_completion import get_completion_class

    ctx = click.get_current_context().find_root()
    cls = get_completion_class(shell)
    click.echo(cls(ctx.command, {}, "dspy-turbo", "_DSPY_TURBO_COMPLETE").source())
    return 0
