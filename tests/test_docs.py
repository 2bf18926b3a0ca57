"""The documentation site: built strictly from the repository, then viewed in headless Chromium."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_report import IMAGES_JS, browser, served  # noqa: F401  (browser: the shared Chromium fixture)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (the test extra installs it)")
    out = tmp_path_factory.mktemp("site")
    p = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return out


def test_the_site_has_every_page_and_the_readme_is_its_guide(site):
    for page in ("index.html", "methods/index.html", "findings/index.html", "api/index.html", "changelog/index.html"):
        assert (site / page).is_file(), page
    index = (site / "index.html").read_text()
    assert "Same run id, same numbers" in index and 'src="demo-capacity.png"' in index
    methods = (site / "methods/index.html").read_text()
    assert "online-ewc-prox" in methods and "Kirkpatrick et al." in methods
    api = (site / "api/index.html").read_text()
    assert all(
        f'id="{name}"' in api
        for name in ("blackout.api.run", "blackout.api.Study", "blackout.numerics.NUMERICS_VERSION")
    )
    assert not (site / "studies").exists() and not (site / "analysis").exists()  # kept in the repository only


@pytest.mark.parametrize("name", ["index.html", "findings/index.html"])
def test_a_page_shows_its_figures_in_chromium(site, browser, name):  # noqa: F811
    figures = re.findall(r"<img [^>]*src=", (site / name).read_text())
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    with served(site) as base:
        page.goto(f"{base}/{name}", wait_until="load")
        images = page.evaluate(IMAGES_JS)
    page.close()
    assert figures and len(images) == len(figures), images
    assert [i["alt"] for i in images if not (i["complete"] and i["natural"] > 0)] == []
    assert not errors
