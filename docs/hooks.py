"""MkDocs hooks: the site's guide, methods and changelog pages are the repository's own files.

README.md becomes the guide (index.md), its "Methods" and "Citing blackout" sections also the methods
page, and CHANGELOG.md the changelog, so each text has one source. Links into ``docs/`` written from
the repository root (``docs/demo-capacity.png``) are made relative to the site's pages.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]


def _sections(text: str, titles: tuple[str, ...]) -> str:
    """The level-2 sections of ``text`` with these titles, in order, each up to the next level-2 heading."""
    parts = re.split(r"(?m)^(?=## )", text)
    return "\n".join(p for t in titles for p in parts if p.startswith(f"## {t}\n"))


def _site_links(text: str) -> str:
    return re.sub(r"(\]\()docs/", r"\1", text)


def on_files(files, config):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    methods = "# Methods\n\n" + _sections(readme, ("Methods", "Citing blackout")).replace("\n## ", "\n### ")
    pages = {
        "index.md": _site_links(readme),
        "methods.md": _site_links(methods),
        "changelog.md": (ROOT / "CHANGELOG.md").read_text(encoding="utf-8"),
    }
    for name, content in pages.items():
        files.append(File.generated(config, name, content=content))
    return files
