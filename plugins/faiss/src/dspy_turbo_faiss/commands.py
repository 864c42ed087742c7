"""``dspy-turbo calibrate``: choose the semantic cache's threshold on labelled pairs (``calibration``)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import click


def add_commands(cli: Any) -> None:
    @click.command(help="Choose the semantic cache threshold.\n\nSweeps thresholds on labelled pairs and prints the one for the YAML.")
    @click.option("--pairs", required=True, metavar="FILE", help="JSON, JSON Lines (or .gz) of {text_a, text_b, label}")
    @click.option("--target-precision", type=float, default=0.99, show_default=True,
                  help="precision the threshold must reach")
    @cli.config_option
    @click.option("--no-guards", is_flag=True, help="score cosine alone, without the guards and the verifier")
    @click.option("--verifier", is_flag=True, help="score with the verifier on (its settings from the config, else the defaults)")
    @click.option("--limit", type=click.IntRange(min=0), default=0, metavar="N", help="use only the first N pairs (0: all)")
    def calibrate(**options) -> int:
        from .calibration import calibrate_command

        return calibrate_command(SimpleNamespace(**options), cli.parse)

    cli.add_command(calibrate)
