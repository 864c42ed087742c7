"""Looking inside a cache from its config: ``dspy-turbo stats``, ``ls`` and ``show``.

Tiers are read through the backend contract's ``entries(prefix)`` (optional: a tier that
cannot list is named, not an error) and ``get``; nothing is promoted, counted or written.
What is printed is an entry's envelope (key, tier, model, times, tags, usage, cost, size):
never a request's text or a credential; a value only with ``show --value``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import click

from ..host.redaction import redact_text, scrub
from .app import CommandGroup, config_option


def _when(ts: float | None) -> str:
    if ts is None:
        return "never"
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _size(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def metadata(tier: str, key: str, entry) -> dict[str, Any]:
    """The envelope of one entry without its value (what ``ls --json`` prints a line of)."""
    return {"key": key, "tier": tier, "model": entry.model, "created_at": _when(entry.created_at),
            "expires_at": _when(entry.expires_at), "tags": list(entry.tags), "usage": dict(entry.usage),
            "cost": entry.cost, "bytes": entry.size, "value_type": entry.tag}


def _open(config: str | None):
    return CommandGroup.load(config)


def _tiers(turbo, tier: str | None):
    from ..cache.transfer import select_tiers

    try:
        return select_tiers(turbo, tier)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--tier") from None


@click.command(help="Entries and bytes per tier, and hit rates.\n\nHit rates are a running program's, read from its prometheus sink (the config's, or --url).")
@config_option
@click.option("--url", metavar="URL", default=None,
              help="the /metrics URL of a running process (default: the config's prometheus sink, if any)")
@click.option("--json", "as_json", is_flag=True, help="print the figures as JSON")
def stats(config: str | None, url: str | None, as_json: bool) -> int:
    from ..cache.transfer import Report, iter_entries

    turbo = _open(config)
    try:
        tiers: dict[str, dict[str, Any]] = {}
        for tier in turbo.cache.tiers:
            row: dict[str, Any] = {"type": tier.backend.name}
            try:
                row["entries"], row["bytes"] = len(tier.backend), tier.backend.bytes_used
                row["scope"] = "tier"  # what the backend counts: every namespace it holds
            except Exception:
                report, count, size = Report(), 0, 0
                try:
                    for _, _, entry in iter_entries(turbo, [tier], report):
                        count, size = count + 1, size + entry.size
                    row.update(entries=count, bytes=size, scope="namespace")
                except Exception as exc:
                    row["error"] = redact_text(f"{type(exc).__name__}: {exc}")
                if report.unlisted:
                    row["error"] = report.unlisted[tier.name]
            tiers[tier.name] = row
        figures: dict[str, Any] = {"namespace": turbo.namespace, "config": config or "<default>", "tiers": tiers}
        figures["running"] = _running(turbo, config, url)
    finally:
        turbo.close()
    if as_json:
        click.echo(json.dumps(figures, indent=2))
        return 0
    click.echo(f"namespace {figures['namespace']!r} ({figures['config']})")
    for name, row in tiers.items():
        if "entries" in row:
            scope = "" if row.get("scope") == "namespace" else "  (all namespaces in it)"
            click.echo(f"  {name:<12} {row['type']:<10} {row['entries']:>10,} entries  {_size(row['bytes']):>10}{scope}")
        else:
            click.echo(f"  {name:<12} {row['type']:<10} {'?':>10}          {row.get('error', '')}")
    running = figures["running"]
    if running is None:
        click.echo("hit rates: no running process to ask (give --url, or a prometheus sink in the config)")
    elif "error" in running:
        click.echo(f"hit rates: {running['url']}: {running['error']}")
    else:
        tiers_text = ", ".join(f"{t} {r:.1%}" for t, r in running["hit_rate_by_tier"].items()) or "-"
        click.echo(f"hit rates ({running['url']}): {running['hit_rate']:.1%} of {running['lookups']:,.0f} lookups"
                   f" (by tier: {tiers_text})")
    return 0


def _running(turbo, config: str | None, url: str | None) -> dict[str, Any] | None:
    """Hit rates of the process serving ``url`` (or the config's metric sink), or None. A
    sink class that can read them back has ``read_running`` (the prometheus sink does)."""
    from ..host.config import parse

    if url is None:  # the command's Turbo has no sinks (see CommandGroup.load): read them from the config
        for spec in parse(config, turbo.registry).sinks:
            if hasattr(spec.cls, "read_running"):
                figures = _read_running(spec.cls, spec.options, None)
                if figures is not None:
                    return figures
        return None
    for cls in turbo.registry.classes["metric_sink"].values():
        if hasattr(cls, "read_running"):
            return _read_running(cls, None, url)
    return {"url": url, "error": "no installed metric sink reads a running process (pip install dspy-turbo-prometheus)"}


def _read_running(cls, options, url: str | None) -> dict[str, Any] | None:
    try:
        return cls.read_running(options, url)
    except Exception as exc:  # a sink's bug is a line of the output, not the command's end
        return {"url": url or "?", "error": redact_text(f"{cls.name}.read_running failed: {type(exc).__name__}: {exc}")}


@click.command(help="List the namespace's entries.\n\nKey, tier, model, created, expires, size and tags of each (each key once, from the first tier holding it).")
@config_option
@click.option("--tier", metavar="NAME", default=None, help="only this tier (by its name in the config)")
@click.option("--tag", metavar="TAG", default=None, help="only entries with this tag")
@click.option("--limit", type=click.IntRange(min=0), default=100, show_default=True, metavar="N",
              help="print at most N entries (0: all)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object a line (the envelope without the value)")
def ls(config: str | None, tier: str | None, tag: str | None, limit: int, as_json: bool) -> int:
    from ..cache.transfer import Report, iter_entries

    turbo = _open(config)
    shown = 0
    report = Report()
    try:
        if not as_json:
            click.echo(f"{'KEY':<50} {'TIER':<8} {'MODEL':<28} {'CREATED':<20} {'EXPIRES':<20} {'SIZE':>9}  TAGS")
        for name, key, entry in iter_entries(turbo, _tiers(turbo, tier), report):
            if tag is not None and tag not in entry.tags:
                continue
            if as_json:
                click.echo(json.dumps(scrub(metadata(name, key, entry))))
            else:
                click.echo(redact_text(f"{key:<50} {name:<8} {entry.model or '-':<28} {_when(entry.created_at):<20} "
                                       f"{_when(entry.expires_at):<20} {_size(entry.size):>9}  {','.join(entry.tags) or '-'}"))
            shown += 1
            if limit and shown >= limit:
                break
    finally:
        turbo.close()
    for name, why in report.unlisted.items():
        click.echo(f"warning: tier {name!r} not listed: {why}", err=True)
    return 0


@click.command(help="Show one entry's envelope.\n\nModel, created, expires, tags, usage, cost, and the tiers holding it; never a credential.\n\nKEY: the entry's key as ls prints it (or only its hash, the part after the namespace).")
@click.argument("key")
@config_option
@click.option("--value", "with_value", is_flag=True, help="also print the cached value (as its codec's JSON)")
@click.option("--json", "as_json", is_flag=True, help="print it as JSON")
def show(key: str, config: str | None, with_value: bool, as_json: bool) -> int:
    from ..cache.codec import encode_value

    turbo = _open(config)
    try:
        full = key if ":" in key else turbo.keys.prefix + key
        found = []
        for tier in turbo.cache.tiers:
            try:
                entry = tier.backend.get(full)
            except Exception as exc:
                click.echo(redact_text(f"warning: tier {tier.name!r} cannot be read: {type(exc).__name__}: {exc}"), err=True)
                continue
            if entry is not None and not entry.expired():
                found.append((tier.name, entry))
    finally:
        turbo.close()
    if not found:
        click.echo(f"no entry {full!r} in any tier of namespace {turbo.namespace!r}", err=True)
        return 1
    name, entry = found[0]
    shown = metadata(name, full, entry)
    shown["tier"] = [n for n, _ in found]
    if with_value:
        shown["value"] = encode_value(entry.value)[1]
    shown = scrub(shown)
    if as_json:
        click.echo(json.dumps(shown, indent=2))
        return 0
    for field, value in shown.items():
        text = value if isinstance(value, str) else json.dumps(value)
        click.echo(redact_text(f"{field + ':':<12} {text}"))
    return 0
