"""The figure files blackout saves, recognised without matplotlib: whether a PNG or SVG is one of
ours (so a report replaces only those), and the digest of what drew it that ``plots.save_figure``
wrote into it (so a report reads back a figure that is current instead of drawing it again).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..files import head

KEY_PREFIX = "blackout-figure-key:"


def is_figure(path: Path) -> bool:
    """A PNG or SVG that ``save_figure`` wrote: it names blackout as its software (PNG) or creator (SVG)."""
    start = head(path, 4096)
    return (
        start.startswith(b"\x89PNG")
        and b"tEXtSoftware\x00blackout" in start
        or re.search(rb"<dc:creator>\s*<cc:Agent>\s*<dc:title>blackout<", start) is not None
    )


def figure_key(path: Path) -> str | None:
    """The ``key`` ``save_figure`` wrote into the file at ``path``; None for a file without one."""
    found = re.search(rb"blackout-figure-key:([0-9a-f]{32})", head(path, 4096))  # PNG: a CRC follows at once
    return found.group(1).decode("ascii") if found else None
