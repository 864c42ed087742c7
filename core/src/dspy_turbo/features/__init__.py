"""The core's own features, each a plugin on the same hooks as a third party's.

One module per feature, registered before any entry point (``plugins.DEFAULT_PLUGINS``,
as pytest's ``default_plugins``): its config section (``dspy_turbo_config_sections``),
what it builds at start-up and publishes on the Turbo (``turbo.publish``), its
``stats()`` block, its part of ``reset_stats()``, ``clear()``, ``invalidate()`` and
``close()``. ``Turbo`` calls the hooks; it never names a feature.
"""
