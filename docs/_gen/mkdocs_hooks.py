"""MkDocs hooks (``hooks:`` in mkdocs.yml): fill the generated blocks of the pages.

A page asks for a block with an HTML comment on a line of its own::

    <!-- generated: config-reference -->
    <!-- generated: api CacheBackend -->

and this hook replaces it with the Markdown ``docs_render.generate`` makes from the
installed code. An unknown block or a failing generator fails the build.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import docs_render  # noqa: E402

MARKER = re.compile(r"^<!-- generated: (.+?) -->$", re.M)


def on_page_markdown(markdown: str, page, config, files) -> str:
    def fill(match: re.Match) -> str:
        try:
            return docs_render.generate(match.group(1))
        except Exception as exc:
            raise RuntimeError(f"{page.file.src_path}: generated block {match.group(1)!r} failed: "
                               f"{type(exc).__name__}: {exc}") from exc

    return MARKER.sub(fill, markdown)
