"""Nothing a user or a plugin author can use goes undocumented.

Every list is read from the live objects (the plugin manager, the component registry,
the settings model, the CLI's parser), so a new hook, config key, CLI command or event
kind fails here until it has its documentation: a docstring or help text in the code
(or, for config keys, an entry in docs/_gen/field_notes.yml), which the generated
reference pages then show.
"""

from __future__ import annotations

from pathlib import Path

import docs_render
import docs_sources
import pluggy
import yaml
from pydantic import Field

from dspy_turbo import Options

REPO = Path(__file__).resolve().parents[2]


def _nav_pages() -> set[str]:
    def walk(node):
        if isinstance(node, str):
            yield node
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)
        elif isinstance(node, dict):
            for value in node.values():
                yield from walk(value)

    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    return set(walk(config["nav"]))


def _page_with(marker: str) -> str:
    pages = [str(path.relative_to(REPO / "docs")) for path, spec in docs_render.markers() if spec == marker]
    assert pages, f"no page has the block <!-- generated: {marker} -->"
    assert set(pages) <= _nav_pages(), f"{pages} not in the mkdocs.yml nav"
    return pages[0]


# -- hooks -------------------------------------------------------------------------------


def test_every_hook_spec_is_documented_in_the_hook_reference():
    hooks = docs_sources.hooks()
    assert "dspy_turbo_cache_backends" in hooks and "dspy_turbo_metric_event" in hooks
    assert docs_render.undocumented_hooks() == []
    _page_with("hook-reference")


def test_the_hook_check_catches_a_hook_without_a_docstring():
    class Specs:
        @pluggy.HookspecMarker("docs_check")
        def dspy_turbo_new_thing(self, turbo):
            pass

    pm = pluggy.PluginManager("docs_check")
    pm.add_hookspecs(Specs)
    assert docs_render.undocumented_hooks({"dspy_turbo_new_thing": pm.hook.dspy_turbo_new_thing}) == ["dspy_turbo_new_thing"]


# -- configuration -----------------------------------------------------------------------


def test_every_config_key_and_component_option_is_documented():
    keys = docs_render.config_keys()
    paths = {key.path for key in keys}
    # The lists come from the live settings model and registry: sanity-check that they are full.
    assert {"namespace", "cache.tiers", "cache.breaker.failures", "cache.tiers[memory].max_bytes"} <= paths
    for kind, components in docs_sources.components().items():
        section = docs_sources.KIND_SECTIONS[kind][0].removesuffix("[]")
        for name, cls in components.items():
            for field in cls.Options.model_fields:
                assert f"{section}[{name}].{field}" in paths, f"{kind} {name!r}: option {field!r} not listed"
    assert docs_render.undocumented_keys() == [], "give these a docstring in the code (or an entry in docs/_gen/field_notes.yml)"


def test_the_config_reference_shows_every_key():
    page = docs_render.config_reference()
    assert "**undocumented**" not in page
    for key in docs_render.config_keys():
        assert f"| `{key.name}` |" in page, key.path
    _page_with("config-reference")


def test_field_notes_name_only_existing_fields():
    assert docs_render.stale_notes() == [], "these entries of docs/_gen/field_notes.yml name no field"


def test_the_config_check_catches_an_option_without_a_description():
    class NewOptions(Options):
        described: int = 1
        """Has a docstring."""
        bare: int = 2
        titled: int = Field(default=3, description="Has a description.")

    keys = list(docs_render.walk_model(NewOptions, "cache.tiers[new].", {}))
    assert docs_render.undocumented_keys(keys) == ["cache.tiers[new].bare"]


# -- the command line --------------------------------------------------------------------


def test_every_cli_command_is_documented():
    commands = [c.name for c in docs_sources.cli_commands()]
    assert {"check", "schema", "plugins", "clear"} <= set(commands)
    assert docs_render.undocumented_commands() == []
    top = docs_sources.cli_help()
    page = docs_render.cli_reference()
    for name in commands:
        assert name in top
        assert f"## `{docs_sources.CONSOLE_SCRIPT} {name}`" in page
    _page_with("cli-reference")


def test_the_cli_check_catches_a_command_without_help():
    commands = [docs_sources.Command("check", "validate a config"), docs_sources.Command("check", "")]
    assert docs_render.undocumented_commands(commands) == ["check"]


# -- events ------------------------------------------------------------------------------


def test_every_event_kind_has_a_section_in_the_event_reference():
    kinds = set(docs_render.event_kinds())
    assert {"hit", "miss", "lm_call", "error", "semantic_reject", "batch", "alert"} <= kinds
    assert docs_render.undocumented_event_kinds() == []
    _page_with("event-kinds")


def test_every_event_field_is_documented():
    assert docs_render.undocumented_event_fields() == []
    assert "**undocumented**" not in docs_render.event_fields()


def test_the_event_check_catches_a_new_kind(tmp_path):
    page = tmp_path / "events.md"
    page.write_text("#### `hit`\n\nA hit.\n", encoding="utf-8")
    assert docs_render.undocumented_event_kinds({"hit", "prefetch"}, page) == ["prefetch"]


# -- every generated block ---------------------------------------------------------------


def test_every_generated_block_of_every_page_renders():
    found = docs_render.markers()
    assert len(found) > 10
    for path, spec in found:
        text = docs_render.generate(spec)
        assert text.strip(), f"{path}: <!-- generated: {spec} --> is empty"


def test_sources_find_a_moved_name_by_scanning_the_packages():
    # A stale hint (the module moved) still finds the class where it is defined now.
    obj, module = docs_sources.locate("CacheBackendSuite", "dspy_turbo.no_such_module")
    assert obj.__name__ == "CacheBackendSuite" and module.startswith("dspy_turbo")


# -- the plugin SDK ----------------------------------------------------------------------


def test_every_sdk_module_is_documented_on_the_sdk_page():
    modules = [m.__name__ for m in docs_sources.sdk_modules()]
    assert {"dspy_turbo.plugin", "dspy_turbo.plugin.backend", "dspy_turbo.plugin.host"} <= set(modules)
    assert docs_render.undocumented_sdk_modules() == []
    page = docs_render.sdk_reference()
    for name in modules[1:]:
        assert f"## `{name}`" in page
    _page_with("sdk-reference")


def test_the_sdk_check_catches_a_module_without_a_docstring(monkeypatch):
    import types

    bare = types.ModuleType("dspy_turbo.plugin.bare")
    monkeypatch.setattr(docs_sources, "sdk_modules", lambda: [bare])
    assert docs_render.undocumented_sdk_modules() == ["dspy_turbo.plugin.bare"]


def test_the_event_table_names_exactly_the_documented_kinds():
    table = docs_sources.event_table()
    assert set(table) == set(docs_render.event_kinds())
    assert docs_render.undocumented_event_kinds(set(table)) == []
    rendered = docs_render.event_table()
    assert all(f"[`{kind}`](#{kind})" in rendered for kind in table)
    _page_with("event-table")


def test_every_conformance_suite_has_its_section():
    import dspy_turbo.testing

    suites = {name for name in dspy_turbo.testing.__all__ if name.endswith("Suite")}
    assert len(suites) >= 7
    shown = {spec.split(" ", 1)[1] for _, spec in docs_render.markers() if spec.startswith("conformance ")}
    assert suites == shown
