"""The ``dspy-turbo`` command.

    dspy-turbo plugins          installed plugins: version, hooks, components
    dspy-turbo check FILE       validate a config: prints OK or every problem; exit 0 or 2
    dspy-turbo schema           JSON Schema of the config with the installed components
    dspy-turbo demo [...]       the cold/warm demo over a DSPy question-answering program
    dspy-turbo clear [...]      remove a namespace's entries (or one tag's) from every tier or one
    dspy-turbo route PROMPT     explain which tier and model the routing config picks for a prompt
    dspy-turbo top --url URL    live dashboard of a process serving the Prometheus sink
    dspy-turbo calibrate --pairs FILE [--target-precision 0.99] [--verifier]
                                sweep semantic-cache thresholds on labelled pairs; print the one for the YAML

Errors are messages, never tracebacks; exit code 2 means bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .config import ConfigError, json_schema, parse
from .plugins import PluginError, build_registry, describe, make_plugin_manager
from .redaction import redact_text


def _registry():
    pm = make_plugin_manager()
    return pm, build_registry(pm)


def cmd_plugins(args) -> int:
    pm, registry = _registry()
    for info in describe(pm, registry):
        dist = f"{info.distribution} {info.version}" if info.distribution else "(not from a distribution)"
        print(f"{info.name}  [{dist}]")
        print(f"  hooks: {', '.join(info.hooks) or '-'}")
        for kind, names in sorted(info.components.items()):
            print(f"  {kind}: {', '.join(names)}")
    return 0


def cmd_check(args) -> int:
    _offline_prices()  # the price check of routed models
    _, registry = _registry()
    config = parse(args.file, registry)
    for issue in config.warnings:
        print(f"warning: {issue}", file=sys.stderr)
    print(f"OK: {args.file}")
    return 0


def cmd_schema(args) -> int:
    _, registry = _registry()
    print(json.dumps(json_schema(registry), indent=2))
    return 0


def cmd_demo(args) -> int:
    from . import demo

    return demo.main(args.rest)  # the demo parses its own options


def cmd_clear(args) -> int:
    from .turbo import load

    turbo = load(args.config)
    errors: dict[str, str] = {}
    turbo.bus.add("cli", lambda e: errors.setdefault(e.tier or "?", e.error or "") if e.kind == "error" else None)
    try:
        removed = turbo.invalidate(namespace=args.namespace, tag=args.tag, tier=args.tier)
    except ValueError as exc:
        print(f"dspy-turbo clear: {exc}", file=sys.stderr)
        return 2
    finally:
        turbo.close()
    what = f"entries tagged {args.tag!r}" if args.tag else "entries"
    namespace = args.namespace or turbo.namespace
    for tier in turbo.cache.tiers:
        if args.tier in (None, tier.name):
            count = removed.get(tier.name)
            print(f"{tier.name}: " + (f"removed {count} {what} of namespace {namespace!r}" if count is not None
                                      else f"FAILED: {errors.get(tier.name, 'unavailable')}"))
    return 0 if all(removed.get(t.name) is not None for t in turbo.cache.tiers if args.tier in (None, t.name)) else 1


def _offline_prices() -> None:
    """Price from DSPy's bundled table: a command never waits on a network fetch (set it to False to refresh)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def cmd_route(args) -> int:
    from .turbo import load

    _offline_prices()

    turbo = load(args.config)  # not installed: explaining makes no LM call
    try:
        explanation = turbo.router().explain(args.prompt, **({"tier": args.tier} if args.tier else {}))
    finally:
        turbo.close()
    if args.json:
        print(json.dumps(explanation, indent=2))
        return 0
    score = "-" if explanation["score"] is None else f"{explanation['score']:.3f}"
    print(f"tier: {explanation['tier']}  model: {explanation['model']}  score: {score}  "
          f"decided by: {explanation['source']}" + (f"  priority: {explanation['priority']}" if explanation["priority"] else ""))
    if explanation["features"]:
        print("features: " + ", ".join(f"{k}={v:g}" for k, v in explanation["features"].items()))
    print("tiers:")
    for tier in explanation["tiers"]:
        cost = "unpriced" if tier["estimated_cost"] is None else f"${tier['estimated_cost']:.6f}"
        mark = "->" if tier["name"] == explanation["tier"] else "  "
        print(f"  {mark} {tier['name']:<10} {tier['model']:<40} scores {tier['scores']:<8} est. {cost}")
    if explanation["budget"]:
        b = explanation["budget"]
        print(f"budget: ${b['spent']:.4f} of ${b['limit']:.2f} spent; on exceeded: {b['on_exceeded']}")
    return 0


# -- top: the live dashboard (dashboard.py) ---------------------------------------------------


def _interval(text: str) -> float:
    value = float(text)
    if not 0.1 <= value <= 60:
        raise argparse.ArgumentTypeError(f"must be between 0.1 and 60 seconds, got {value:g}")
    return value


def cmd_top(args) -> int:
    from .dashboard import Dashboard, MetricsURL

    try:
        source = MetricsURL(args.url)
    except ValueError as exc:
        print(f"dspy-turbo top: {exc}", file=sys.stderr)
        return 2
    return Dashboard(source, args.interval).run(once=args.once)


def add_top(sub) -> None:
    top = sub.add_parser("top", help="live dashboard of a running dspy-turbo (its Prometheus /metrics endpoint)")
    top.add_argument("--url", default="http://127.0.0.1:9464/metrics",
                     help="the /metrics URL of the prometheus sink (default: %(default)s)")
    top.add_argument("--interval", type=_interval, default=1.0, metavar="SECONDS", help="refresh period (default: 1)")
    top.add_argument("--once", action="store_true", help="print one frame and exit (for scripts)")
    top.set_defaults(func=cmd_top)
# -- semantic cache calibration (dspy_turbo.semantic) --


def cmd_calibrate(args) -> int:
    from .calibration import calibrate_command

    return calibrate_command(args, _registry()[1])


def _add_calibrate(sub) -> None:
    cal = sub.add_parser("calibrate", help="choose the semantic cache threshold from labelled pairs")
    cal.add_argument("--pairs", required=True, help="JSON, JSON Lines (or .gz) of {text_a, text_b, label}")
    cal.add_argument("--target-precision", type=float, default=0.99, help="precision the threshold must reach (default 0.99)")
    cal.add_argument("--config", help="a config whose cache.semantic embedder and guards to use (default: sentence-transformers)")
    cal.add_argument("--no-guards", action="store_true", help="score cosine alone, without the guards and the verifier")
    cal.add_argument("--verifier", action="store_true",
                     help="score with the verifier on (its settings from --config, else the defaults)")
    cal.add_argument("--limit", type=int, default=0, help="use only the first N pairs")
    cal.set_defaults(func=cmd_calibrate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dspy-turbo", description="dspy-turbo: caching and performance for DSPy programs")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("plugins", help="list installed plugins, their hooks and components").set_defaults(func=cmd_plugins)
    check = sub.add_parser("check", help="validate a config file (exit 0 OK, 2 problems)")
    check.add_argument("file")
    check.set_defaults(func=cmd_check)
    sub.add_parser("schema", help="print the config's JSON Schema").set_defaults(func=cmd_schema)
    clear = sub.add_parser("clear", help="remove a namespace's entries, or only those with a tag, from every tier or one")
    clear.add_argument("--config", metavar="PATH", default=None, help="the YAML config (default: the embedded default)")
    clear.add_argument("--tier", metavar="NAME", default=None, help="only this tier (by its name in the config)")
    clear.add_argument("--tag", metavar="TAG", default=None, help="only entries with this tag (see turbo.tagged)")
    clear.add_argument("--namespace", metavar="NS", default=None, help="another namespace than the config's")
    clear.set_defaults(func=cmd_clear)
    route = sub.add_parser("route", help="explain the routing decision for a prompt (no LM call)")
    route.add_argument("prompt")
    route.add_argument("-c", "--config", default="turbo.yaml", help="config file with a routing section (default: turbo.yaml)")
    route.add_argument("--tier", help="a tier hint, as a call's tier= argument")
    route.add_argument("--json", action="store_true", help="print the explanation as JSON")
    route.set_defaults(func=cmd_route)
    sub.add_parser("demo", help="run the cold/warm demo (dspy-turbo demo --help for its options)",
                   add_help=False).set_defaults(func=cmd_demo)
    add_top(sub)
    _add_calibrate(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args, rest = build_parser().parse_known_args(argv)
    if rest and args.command != "demo":
        build_parser().error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    try:
        return args.func(args)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except PluginError as exc:
        print(f"plugin error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the promise is a message, never a traceback (nor a URL's password)
        print(redact_text(f"error: {type(exc).__name__}: {exc}"), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
