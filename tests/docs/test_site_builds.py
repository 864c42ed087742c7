"""The documentation site builds with ``mkdocs build --strict`` (a broken link, a missing
page, an example file that moved or a generated block that fails is an error), and the
generated pages carry what the code defines."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import docs_sources
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_site_builds_strict_and_shows_the_generated_references(tmp_path):
    pytest.importorskip("mkdocs", reason="pip install -r docs/requirements.txt (the Makefile does)")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]

    def page(path: str) -> str:
        return (site / path / "index.html").read_text(encoding="utf-8")

    hooks = page("plugins/hooks")
    for name in docs_sources.hooks():
        assert f'id="{name}"' in hooks
    config = page("reference/configuration")
    assert 'id="cfg-cache-breaker"' in config and "max_bytes" in config
    cli = page("reference/cli")
    for command in docs_sources.cli_commands():
        assert f'id="{command.name}"' in cli
    assert "Comes with the <code>dspy-turbo-prometheus</code> plugin" in cli, "top says what to install"
    assert "PRAGMA journal_mode=WAL" in page("plugins/tutorial")  # the example's source, read at build time
    assert (site / "search" / "search_index.json").is_file()
