"""``dspy-turbo export`` and ``import``: a namespace's entries as JSON lines (see
``dspy_turbo.cache.transfer`` for the format), streamed, with a progress bar on a terminal."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import click

from .app import CommandGroup, config_option


@contextlib.contextmanager
def _progress(enabled: bool | None, what: str, total: int | None) -> Iterator:
    """A callback ``advance(n)`` drawing a bar on stderr (only on a terminal, unless forced)."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = [SpinnerColumn(), TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(what, total=total)
        yield lambda n: bar.advance(task, n)


def _total(turbo) -> int | None:
    """Entries the tiers hold, when every one can say (an upper bound: all namespaces)."""
    try:
        return sum(len(t.backend) for t in turbo.cache.tiers)
    except Exception:
        return None


def _summary(verb: str, report, path: str) -> str:
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(report.skipped.items()))
    per_tier = ", ".join(f"{name} {n}" for name, n in report.tiers.items()) or "none"
    return f"{verb} {report.entries} entries ({per_tier})" + (f"; skipped {skipped}" if skipped else "") + f": {path}"


@click.command("export", help="Export the namespace's entries as JSON lines.\n\nTo a file or stdout, streamed (constant memory), never pickle; each key once.")
@config_option
@click.option("-o", "--output", metavar="FILE", default="-", show_default=True,
              help="where to write (a .gz name is compressed; - is stdout)")
@click.option("--tier", metavar="NAME", default=None, help="only this tier's entries (default: every tier, each key once)")
@click.option("--progress/--no-progress", default=None, help="a progress bar on stderr (default: when it is a terminal)")
def export_command(config: str | None, output: str, tier: str | None, progress: bool | None) -> int:
    turbo = CommandGroup.load(config)
    try:
        with _progress(progress, "exporting", _total(turbo)) as advance:
            try:
                report = turbo.export(output, tier=tier, progress=advance)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--tier") from None
    finally:
        turbo.close()
    for name, why in report.unlisted.items():
        click.echo(f"warning: tier {name!r} not exported: {why}", err=True)
    click.echo(_summary("exported", report, output if output != "-" else "<stdout>"), err=True)
    return 0


@click.command("import", help="Import entries written by export.\n\nInto the config's tiers and namespace, streamed; expired entries are skipped.\n\nFILE: an export (.jsonl, or .jsonl.gz; - reads stdin).")
@click.argument("file", metavar="FILE")
@config_option
@click.option("--tier", metavar="NAME", default=None, help="only into this tier (default: every tier, as a store writes)")
@click.option("--progress/--no-progress", default=None, help="a progress bar on stderr (default: when it is a terminal)")
def import_command(file: str, config: str | None, tier: str | None, progress: bool | None) -> int:
    from ..cache.transfer import TransferError

    turbo = CommandGroup.load(config)
    try:
        with _progress(progress, "importing", None) as advance:
            try:
                report = turbo.import_(file, tier=tier, progress=advance)
            except ValueError as exc:
                if isinstance(exc, TransferError):
                    raise click.ClickException(str(exc)) from None
                raise click.BadParameter(str(exc), param_hint="--tier") from None
            except OSError as exc:
                raise click.ClickException(f"cannot read {file}: {exc.strerror or exc}") from None
    finally:
        turbo.close()
    click.echo(_summary("imported", report, file if file != "-" else "<stdin>"))
    return 0
