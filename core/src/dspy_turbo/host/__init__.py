"""The host: ``Turbo`` (one assembled cache layer), the YAML config, the plugin manager and
component registry, the core's own components, and the option types every component uses."""
