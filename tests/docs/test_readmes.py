"""The READMEs are short and point into the docs: every relative link resolves, and the
root README starts with the two commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
READMES = ["README.md", "core/README.md", "plugins/README.md",
           *sorted(p.relative_to(REPO).as_posix() for p in REPO.glob("plugins/*/README.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


@pytest.mark.parametrize("readme", READMES)
def test_a_readme_links_to_files_that_exist(readme):
    path = REPO / readme
    text = path.read_text(encoding="utf-8")
    broken = [target for target, _ in LINK.findall(text)
              if "://" not in target and not (path.parent / target).resolve().exists()]
    assert broken == []


def test_the_readme_starts_with_the_two_commands_and_stays_short():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"^make (\w+)", text, flags=re.M)
    assert commands[:2] == ["demo", "test"]
    assert len(text.splitlines()) <= 130, "user documentation belongs in docs/"
