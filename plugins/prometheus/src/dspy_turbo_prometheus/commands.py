"""``dspy-turbo top``, the plugin's subcommand (added through ``dspy_turbo_commands``).

The command only parses its options: the dashboard and prometheus_client are imported
when it runs, so every other ``dspy-turbo`` command starts as fast without them.
"""

from __future__ import annotations

import click


@click.command(help="Live dashboard of a running program.\n\nRead from the /metrics endpoint of its prometheus sink.")
@click.option("--url", default="http://127.0.0.1:9464/metrics", show_default=True,
              help="the /metrics URL of the prometheus sink")
@click.option("--interval", type=click.FloatRange(0.1, 60), default=1.0, show_default=True, metavar="SECONDS",
              help="refresh period")
@click.option("--once", is_flag=True, help="print one frame and exit (for scripts)")
def top(url: str, interval: float, once: bool) -> int:
    from .dashboard import Dashboard, MetricsURL

    try:
        source = MetricsURL(url)
    except ValueError as exc:
        click.echo(f"dspy-turbo top: {exc}", err=True)
        return 2
    return Dashboard(source, interval).run(once=once)
