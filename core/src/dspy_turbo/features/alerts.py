"""Alert rules as a feature: the ``metrics.alerts`` section, its monitor on the event bus,
the ``alerts_firing`` block of ``stats()`` (see ``dspy_turbo.events.alerts``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..events.alerts import AlertMonitor, AlertRule
from ..plugin.hookspecs import hookimpl
from ..plugin.sections import ConfigSection

if TYPE_CHECKING:
    from ..host.turbo import Turbo

PATH = "metrics.alerts"


@hookimpl
def dspy_turbo_config_sections():
    return [ConfigSection(PATH, list[AlertRule], default=[],
                          doc="Alert rules over a sliding window of events (see "
                              "[monitoring](../guides/monitoring.md#alerts)).")]


@hookimpl(tryfirst=True)
def dspy_turbo_startup(turbo: Turbo) -> None:
    rules = turbo.config.section(PATH)
    monitor = None
    if rules:
        monitor = AlertMonitor(rules, turbo.bus, turbo.namespace)
        turbo.bus.add_background("alerts", monitor, turbo.settings.metrics.queue_size)
    turbo.publish("alerts", monitor)


@hookimpl
def dspy_turbo_stats(turbo: Turbo) -> dict[str, Any] | None:
    monitor = turbo.features.get("alerts")
    return None if monitor is None else {"alerts_firing": monitor.firing()}
