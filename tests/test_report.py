"""The report says the right things (the law, the ranking, the stability check, the failed runs;
numbers checked against computations made here), escapes every piece of text, is written whole or
not at all, and, in a real headless Chromium served over HTTP, shows every figure decoded with no
console error, no script and no request leaving the page."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import threading
from contextlib import contextmanager
from functools import partial
from html.parser import HTMLParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from blackout.study import capacity
from blackout.study.analysis import Agreement, RuleRun
from blackout.study.report import render_report, write_report
from blackout.study.results import ResultSet
from tests.factory import make_result

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
HOSTILE = '<script>alert(1)</script> "&<>'
TITLE = f"Width sweep {HOSTILE}"
WIDTHS = (25, 50, 100, 400)
SEEDS = (0, 1, 2)
BLACKOUT = {25: 3, 50: 4, 100: 6}  # on the line 2 + 0.04 x; the widest never blacks out
TASKS = 8
SECTIONS = [
    "summary",
    "capacity-law",
    "methods-ranking",
    "stability-check",
    "figures",
    "failed-runs",
    "runs-table",
    "configs",
    "study",
    "versions",
]


def stability(t: int) -> float:
    return 0.3 * 1.6**t  # first >= 2 at task 5


def sweep_run(width: int, seed: int, tasks: int = TASKS, blackout: int | None = None):
    n = blackout or tasks
    acc = [
        [0.1 if blackout and i + 1 == blackout else round(0.95 - 0.08 * (i - j), 3) for j in range(i + 1)]
        for i in range(n)
    ]
    diags = [
        {
            "task": t,
            "stability": stability(t),
            "sharpness": 0.2 * 1.5**t,
            "new_task_acc": acc[t - 1][t - 1],
            "dead_units": 0.02 * (t - 1),
            "memory_floats": 1500 * t,
            "memory_samples": 0,
        }
        for t in range(1, n + 1)
    ]
    return make_result(
        acc, tasks=tasks, blackout=blackout, cause="collapsed", diagnostics=diags, hidden=(width,), seed=seed
    )


def sweep() -> list:
    return [sweep_run(w, s, blackout=BLACKOUT.get(w)) for w in WIDTHS for s in SEEDS]


FAILED = {
    "run_id": "f00dfeed00000001",
    "config": make_result(hidden=(77,), seed=9, method="si", lam=1.0).config,
    "error": f"ValueError: {HOSTILE}",
    "attempts": 2,
}


class Page(HTMLParser):
    """The parts of a page the tests read: every start tag, the text of each section and of the
    title, and each table with an id as rows of cell texts."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.sections: dict[str, str] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self.title = ""
        self._section = self._table = None
        self._cell: list[str] | None = None
        self._in_title = self._in_body = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "section":
            self._section = a.get("id")
            self.sections[self._section] = ""
        elif tag == "table" and a.get("id"):
            self._table = a["id"]
            self.tables[self._table] = []
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._table and self._in_body:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table and self._in_body:
            self._cell = []
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag):
        if tag == "section":
            self._section = None
        elif tag == "table":
            self._table = None
        elif tag == "tbody":
            self._in_body = False
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._section:
            self.sections[self._section] += data
        if self._cell is not None:
            self._cell.append(data)
        if self._in_title:
            self.title += data


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """The sweep's report with one failed run, a hostile title and a hostile study spec."""
    folder = tmp_path_factory.mktemp("full")
    runs = sweep()
    study = {"study": "widths", "note": HOSTILE, "specs": [{"grid": {"hidden": [[w] for w in WIDTHS]}}]}
    path = write_report(
        folder / "report.html",
        ResultSet(runs, [FAILED]),
        title=TITLE,
        study=study,
        figures=folder / "figures",
        n_boot=100,
        svg=True,
    )
    text = path.read_text(encoding="utf-8")
    return {"path": path, "text": text, "page": Page(text), "runs": runs, "study": study}


# -- content --------------------------------------------------------------------------------


def test_sections_in_order_and_nothing_outside_the_file(full):
    page, text = full["page"], full["text"]
    assert text.startswith("<!DOCTYPE html>")
    assert [a["id"] for tag, a in page.tags if tag == "section"] == SECTIONS
    tags = {tag for tag, _ in page.tags}
    assert not tags & {"script", "iframe", "object", "embed", "base"}
    assert [a for tag, a in page.tags if tag == "link"] == [{"rel": "icon", "href": "data:,"}]  # no favicon fetch
    assert not [a for _, a in page.tags if any(k.startswith("on") for k in a)]  # no event handlers
    srcs = [a["src"] for tag, a in page.tags if tag == "img"]
    assert len(srcs) == 5 + 2 * 2  # capacity, stability, forecast, methods, plasticity; matrix and curves of two runs
    for src in srcs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1], validate=True)[:8] == PNG_MAGIC
    assert [a["href"] for _, a in page.tags if "href" in a] == ["data:,"]
    assert "url(" not in text and "@import" not in text and "skipped" not in text


def test_hostile_text_is_text(full):
    page, text = full["page"], full["text"]
    assert page.title == TITLE
    assert "<script" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    (row,) = page.tables["failed"]
    assert row[-1] == FAILED["error"]
    spec = page.sections["study"]
    assert json.loads(spec[spec.index("{") :]) == full["study"]  # the whole spec, intact


def test_capacity_law_is_the_line_through_the_blackouts(full):
    x = [w for w in WIDTHS for _ in SEEDS if w in BLACKOUT]
    y = [BLACKOUT[w] for w in x]
    slope, intercept = np.polyfit(x, y, 1)  # the uncensored points lie on it, so Tobit and OLS agree
    law = " ".join(full["page"].sections["capacity-law"].split())
    assert "all runs: 12 runs, 3 censored" in law
    assert f"Linear law: blackout task ≈ {slope:.4g} × width + {intercept:.4g}" in law
    (row,) = full["page"].tables["laws"]
    assert row[:4] == ["all runs", "12", "3", f"{slope:.4g}"]


def test_summary_counts(full):
    text = " ".join(full["page"].sections["summary"].split())
    blackouts = [BLACKOUT[w] for w in WIDTHS for _ in SEEDS if w in BLACKOUT]
    assert "12 finished runs and 1 failed run" in text
    assert (
        f"{len(blackouts)} of 12 runs blacked out (cause: collapsed {len(blackouts)}); blackout task median "
        f"{np.median(blackouts):g}, range {min(blackouts)} to {max(blackouts)}"
    ) in text
    assert "3 runs ended without blackout" in text


def test_methods_ranked_with_plasticity_columns(full):
    rows = full["page"].tables["methods"]
    assert [r[1] for r in rows] == ["400", "100", "50", "25"]  # most tasks learned first
    for r in rows:
        w = int(r[1])
        n = BLACKOUT.get(w, TASKS)
        last = 0.1 if w in BLACKOUT else 0.95  # the blackout row is at chance; else the task just learned
        assert r[2] == "3"
        assert r[3] == (f"{n - 1:.1f}" if w in BLACKOUT else f"≥ {TASKS:.1f}")  # censored: a lower bound
        assert r[4] == ("collapsed 3" if w in BLACKOUT else "none")
        assert r[-5:-2] == [f"{last:.3f}", "0", f"{0.02 * (n - 1):.3f}"]
        assert r[-2:] == [f"{1500 * n:,}", "0"]  # kept after the last task; no stored samples
    assert len(rows[0]) == 5 + 1 + 5  # the one checkpoint an 8-task study reaches: its last task
    assert "avg acc after 8" in full["text"] and "avg acc after 10" not in full["text"]


def test_stability_check_plain_rule(full):
    compared = []
    for w in WIDTHS:
        first = next((t for t in range(1, TASKS + 1) if stability(t) >= 2), None)
        b = BLACKOUT.get(w)
        if b is not None and first is not None and first <= b:  # a run stops at its blackout task
            compared += [abs(b - first) <= 1] * len(SEEDS)
    rule, reach = full["page"].tables["predictors"]
    assert rule[0] == "s ≥ 2 (plain rule)"
    assert rule[1:3] == [str(len(compared)), f"{np.mean(compared):.0%}"]
    # these hand-made runs record no drift: the drift rule fires one task after s first reaches 2.15
    assert reach[0].startswith("the task after one that starts with an unstable weight")
    steep = next(t for t in range(1, TASKS + 1) if stability(t) >= 2.15)
    near = [abs(b - (steep + 1)) <= 1 for w, b in BLACKOUT.items() if steep <= b] * len(SEEDS)
    assert reach[1:3] == [str(len(near)), f"{np.mean(near):.0%}"]
    assert len(full["page"].tables["stability-runs"]) == len(full["runs"])


def test_runs_failed_configs_versions(full):
    page = full["page"]
    ids = [r[0] for r in page.tables["runs"]]
    assert sorted(ids) == sorted(r.run_id for r in full["runs"])
    (failed,) = page.tables["failed"]
    assert failed[:5] == [FAILED["run_id"], "si", "77", "9", "2"]
    assert FAILED["run_id"] not in ids and "1 run failed" in page.sections["failed-runs"]
    assert page.sections["configs"].count('"hidden"') == len(full["runs"])
    versions = {r[0]: r[1:] for r in page.tables["version-table"]}
    assert {"python", "numpy", "torch", "matplotlib", "blackout"} <= set(versions)
    assert versions["blackout"][1] == f"{full['runs'][0].version} (12 runs)"
    assert versions["python"][1] == "3 (12 runs)"  # as the runs recorded it


def test_figures_folder_holds_what_the_page_shows(full):
    folder = full["path"].parent / "figures"
    for name in ("capacity", "stability", "forecast", "methods", "plasticity"):
        assert (folder / f"{name}.png").read_bytes()[:8] == PNG_MAGIC
        assert (folder / f"{name}.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
    src = next(a["src"] for tag, a in full["page"].tags if tag == "img" and a["alt"] == "plasticity")
    assert base64.b64decode(src.split(",", 1)[1]) == (folder / "plasticity.png").read_bytes()
    assert "Sharpness per task" in (folder / "stability.svg").read_text()
    assert sorted(p.name for p in full["path"].parent.iterdir()) == ["figures", "report.html"]  # no temp file left


def test_unchanged_figures_are_read_back_and_changed_ones_drawn(tmp_path, monkeypatch):
    """A figure is drawn again exactly when what it shows or the code drawing it changed; the files
    left are those of this report (an SVG it was not asked for is removed, not left stale)."""
    import blackout.study.plots as plots
    import blackout.study.report as report

    runs = [sweep_run(w, 0, blackout=BLACKOUT.get(w)) for w in WIDTHS]
    figures = tmp_path / "figures"
    drawn: list[str] = []
    save = plots.save_figure
    monkeypatch.setattr(plots, "save_figure", lambda fig, stem, *a: drawn.append(stem.name) or save(fig, stem, *a))

    def again(runs, **kw) -> dict[str, bytes]:
        drawn.clear()
        write_report(tmp_path / "r.html", ResultSet(runs), title="t", figures=figures, n_boot=20, **kw)
        return {p.name: p.read_bytes() for p in figures.iterdir()}

    first = again(runs, svg=True)
    names = {"capacity", "stability", "forecast", "methods", "plasticity"}
    assert names <= set(drawn) and len(drawn) == 9 and len(first) == 18  # 2 reps x (matrix, curves), PNG + SVG
    assert again(runs, svg=True) == first and drawn == []  # nothing changed: every file read back
    png_only = again(runs)
    assert drawn == [] and png_only == {k: v for k, v in first.items() if k.endswith(".png")}
    changed = [*runs[:-1], dataclasses.replace(runs[-1], metrics={**runs[-1].metrics, "avg_acc": 0.5})]
    again(changed)  # only the widest run's numbers moved: the figures drawn from it are drawn again
    widest = f"run-{runs[-1].run_id}"
    assert sorted(drawn) == sorted(["stability", "methods", "plasticity", f"{widest}-matrix", f"{widest}-curves"])
    monkeypatch.setattr(report, "_code_digest", lambda: "other code")
    again(changed)
    assert len(drawn) == 9  # the code changed: everything is drawn again
    page = Page((tmp_path / "r.html").read_text(encoding="utf-8"))
    src = next(a["src"] for tag, a in page.tags if tag == "img" and a["alt"] == "methods")
    assert base64.b64decode(src.split(",", 1)[1]) == (figures / "methods.png").read_bytes()


def test_a_figure_digest_tells_nan_from_missing():
    a, b = sweep_run(25, 0, tasks=3), sweep_run(25, 0, tasks=3)
    a.diagnostics[0]["dead_units"], b.diagnostics[0]["dead_units"] = float("nan"), None
    from blackout.study.report import _Figures

    key = _Figures(None)._key
    assert key("plasticity", [a]) != key("plasticity", [b])
    assert key("plasticity", [a]) == key("plasticity", [dataclasses.replace(a)]) != key("methods", [a])


def test_predictor_is_shown_beside_the_rule():
    runs = [sweep_run(25, 0, tasks=6, blackout=3), sweep_run(50, 0, tasks=6)]
    analysis = capacity.analyze(runs, "width", n_boot=5)
    named = [
        RuleRun("a", 0, 4, 5, True, 1),
        RuleRun("b", 1, 4, 6, False, 2),
        RuleRun("c", 2, 4, 5, True, 1),
        RuleRun("d", 3, None, None, None, None),
        RuleRun("e", 4, None, None, None, None),
    ]
    analysis = dataclasses.replace(
        analysis, predictor=Agreement("sharpness <early> & warned", named, 0, fires_before=1)
    )
    page = Page(render_report(ResultSet(runs), analysis, title="p"))
    rule, predictor = page.tables["predictors"]
    assert rule[0] == "s ≥ 2 (plain rule)"
    assert predictor == ["sharpness <early> & warned", "3", "67%", "2.3", "80%"]  # 2 of 3 within one; 4 of 5 right
    assert "none" in page.sections["failed-runs"] and "failed" not in page.tables


def test_no_finished_runs_says_so_and_clears_stale_figures(tmp_path):
    figures = tmp_path / "figures"
    figures.mkdir()
    from matplotlib.figure import Figure

    from blackout.study.plots import save_figure

    save_figure(Figure(), figures / "plasticity")  # a figure an earlier report saved
    (figures / "mine.png").write_bytes(PNG_MAGIC)
    lost = {"run_id": "lost", "config": None, "error": "worker died", "attempts": 3}
    path = write_report(tmp_path / "r.html", ResultSet([], [lost]), title="empty", figures=figures, n_boot=5)
    page = Page(path.read_text(encoding="utf-8"))
    for section in ("summary", "capacity-law", "methods-ranking", "stability-check", "runs-table", "configs"):
        assert "No run finished" in page.sections[section], section
    assert page.tables["failed"] == [["lost", "?", "?", "?", "3", "worker died"]]
    assert "No study specification was given" in page.sections["study"]
    assert not [t for t, _ in page.tags if t == "img"] and "Plasticity figure skipped" in page.sections["figures"]
    assert not (figures / "plasticity.png").exists()  # it would contradict this report
    assert (figures / "mine.png").read_bytes() == PNG_MAGIC


def test_failed_rendering_leaves_the_old_page(tmp_path):
    out = tmp_path / "report.html"
    out.write_text("<!DOCTYPE html><p>old</p>")
    with pytest.raises(ValueError, match="axis"):
        write_report(out, ResultSet([sweep_run(25, 0, tasks=3)]), axis="bogus", title="x")
    assert out.read_text() == "<!DOCTYPE html><p>old</p>" and [p.name for p in tmp_path.iterdir()] == ["report.html"]


# -- real browser ---------------------------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
IMAGES_JS = """async () => {
  const imgs = [...document.images];
  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
  return imgs.map(i => ({alt: i.alt, complete: i.complete, natural: i.naturalWidth, shown: i.getBoundingClientRect().width}));
}"""


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (Debian package 'chromium')")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextmanager
def served(folder: Path):
    """``folder`` over HTTP on 127.0.0.1, for as long as the block runs."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def visit(browser, folder: Path, name: str) -> dict:
    """Load ``folder/name`` from a local server; what the browser saw, checked, and the page to read."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, requests, dialogs = [], [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    with served(folder) as base:
        page.goto(f"{base}/{name}", wait_until="load")
        images = page.evaluate(IMAGES_JS)
        scripts = page.locator("script").count()
        problems = [f"console error: {e}" for e in errors] + [f"dialog: {d}" for d in dialogs]
        problems += [f"request outside the page: {u}" for u in requests if not u.startswith((base, "data:"))]
        problems += [f"img {i['alt']!r} not decoded" for i in images if not (i["complete"] and i["natural"] > 0)]
        problems += [f"img {i['alt']!r} not shown" for i in images if i["shown"] <= 0]
        problems += [f"{scripts} script element(s)"] if scripts else []
        return {"page": page, "problems": problems, "images": images}


def test_browser_shows_the_report(browser, full, tmp_path):
    seen = visit(browser, full["path"].parent, "report.html")
    page = seen["page"]
    try:
        assert seen["problems"] == []
        assert len(seen["images"]) == 9 and all(i["natural"] > 300 for i in seen["images"])
        assert page.title() == TITLE
        assert page.locator("h1").inner_text() == TITLE
        for sid in SECTIONS:
            assert page.locator(f"section#{sid}").is_visible(), sid
        failed = page.locator("#failed-runs").inner_text()
        assert FAILED["run_id"] in failed and FAILED["error"] in failed
        assert json.dumps(HOSTILE) in page.locator("#study").inner_text()  # as the JSON string it is
        shot = page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    finally:
        page.close()
    from PIL import Image

    with Image.open(io.BytesIO(shot)) as im:
        assert im.width == 1280 and im.height > 3000
        pixels = np.asarray(im.convert("RGB").resize((im.width // 8, im.height // 8)))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # text and plots, not a blank page


def test_browser_check_catches_a_broken_page(browser, full, tmp_path):
    """The checks above can fail: a script, a console error and an undecodable image are each caught."""
    text = full["text"].replace("<figure>", '<figure><img src="data:image/png;base64,bm90IGEgcG5n" alt="bad">', 1)
    text = text.replace("</body>", '<script>console.error("deliberate")</script></body>')
    (tmp_path / "broken.html").write_text(text, encoding="utf-8")
    seen = visit(browser, tmp_path, "broken.html")
    seen["page"].close()
    assert "console error: deliberate" in seen["problems"]
    assert "img 'bad' not decoded" in seen["problems"]
    assert "1 script element(s)" in seen["problems"]


def test_a_study_with_projection_runs_shows_their_subspace_use(tmp_path):
    runs = [sweep_run(w, s, blackout=BLACKOUT.get(w)) for w in WIDTHS for s in SEEDS]
    for r in runs[:2]:
        for d in r.diagnostics:
            d["subspace_use"] = [0.1 * d["task"] / TASKS, 0.5]
    path = write_report(tmp_path / "r.html", ResultSet(runs), title="t", figures=tmp_path / "figures", n_boot=20)
    page = Page(path.read_text(encoding="utf-8"))
    src = next(a["src"] for tag, a in page.tags if tag == "img" and a["alt"] == "subspace use")
    assert base64.b64decode(src.split(",", 1)[1]) == (tmp_path / "figures" / "subspace.png").read_bytes()
    assert "Subspace use" in page.sections["figures"]
