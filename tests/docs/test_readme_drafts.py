"""The shortened READMEs prepared in docs/_drafts link to files that exist from where
they will live (the draft at docs/_drafts/X replaces X)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DRAFTS = REPO / "docs" / "_drafts"
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


@pytest.mark.parametrize("draft", sorted(p.relative_to(DRAFTS).as_posix() for p in DRAFTS.rglob("README.md")))
def test_a_draft_readme_links_to_files_that_exist_from_its_final_place(draft):
    text = (DRAFTS / draft).read_text(encoding="utf-8")
    final = REPO / draft
    assert final.parent.is_dir(), f"{draft} would replace a file in a folder that does not exist"
    broken = [target for target, _ in LINK.findall(text)
              if "://" not in target and not (final.parent / target).resolve().exists()]
    assert broken == []
