"""The report says the right things (fitted law, counts, escaped text, one row per run) and, in a
real headless Chromium, shows every figure decoded and on screen without console errors.

Chromium is driven over the DevTools protocol through ``--remote-debugging-pipe`` (NUL-separated
JSON on file descriptors 3 and 4), so the browser test needs only the Debian ``chromium`` package
and the standard library.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import select
import shutil
import signal
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from blackout.report import representative_runs, write_report

# -- hand-built inputs -----------------------------------------------------------------------

WIDTHS = (25, 50, 100, 400)
SEEDS = (0, 1, 2)
LABEL = "method=ewc <lam=15> & co"


def make_result(run_id, method="ewc", lam=15.0, width=50, seed=0, tasks=6, blackout=None):
    """A plausible run: tasks learned to ~0.95 then decaying; at blackout every task is at chance."""
    rows = blackout or tasks
    acc = [[(0.1 + 0.02 * (j % 2) if blackout and i + 1 == blackout else round(0.95 - 0.08 * (i - j), 3))
            if j <= i else None for j in range(tasks)] for i in range(rows)]
    return {
        "run_id": run_id, "version": "0.1.0", "seed": seed, "n_params": 74 * width,
        "config": {"data": {"dataset": "digits", "stream": "permuted", "tasks": tasks},
                   "model": {"arch": "mlp", "hidden": [width]}, "method": {"method": method, "lam": lam},
                   "train": {"optimizer": "sgd", "lr": 0.1, "seed": seed}, "blackout": {"margin": 0.1}},
        "data": {"source": "embedded", "note": "", "chance": [0.1] * tasks},
        "acc": acc,
        "diagnostics": [{"task": t, "stability": 0.3 * 1.6 ** t, "train_loss": 0.2} for t in range(1, rows + 1)],
        "metrics": {"avg_acc": float(np.mean([v for v in acc[-1] if v is not None]))},
        "blackout": {"task": blackout, "cause": "collapsed" if blackout else None,
                     "retained": 0 if blackout else rows, "retained_tasks": []},
        "tasks_run": rows,
        "timings": {"total": 1.0},
    }


def sweep(blackouts=True):
    """Width sweep of EWC: narrow nets black out early, the widest never does (censored)."""
    out = []
    for w in WIDTHS:
        for s in SEEDS:
            b = {25: 3, 50: 4, 100: 6}.get(w) if blackouts else None
            out.append(make_result(f"ewc-{w}-{s}", width=w, seed=s, tasks=8, blackout=b))
    return out


def analysis_for(results, all_censored=False):
    """An analysis of the sweep shaped like blackout.capacity.analyze's output."""
    points = [{"x": r["config"]["model"]["hidden"][0], "y": r["blackout"]["task"] or r["tasks_run"],
               "censored": all_censored or r["blackout"]["task"] is None, "seed": r["seed"],
               "run_id": r["run_id"]} for r in results]
    summary = []
    for x in WIDTHS:
        ys = [p["y"] for p in points if p["x"] == x]
        summary.append({"x": x, "n": len(ys), "n_censored": sum(p["censored"] for p in points if p["x"] == x),
                        "mean": float(np.mean(ys)), "ci_lo": float(np.mean(ys)) - 0.5,
                        "ci_hi": float(np.mean(ys)) + 0.5, "values": ys})
    return {
        "axis": "width",
        "groups": [{
            "label": LABEL, "key": ["ewc", 15.0], "points": points, "summary": summary,
            "linear": {"slope": 0.0123, "intercept": 2.5, "r2": 0.981, "slope_ci": [0.0101, 0.0145], "n": 12,
                       "n_censored": sum(p["censored"] for p in points), "ok": True, "reason": "", "aic": 10.0},
            "power": {"exponent": None, "coef": None, "r2": None, "exponent_ci": None, "ok": False,
                      "reason": "too few uncensored widths", "aic": None},
            "better": "linear",
        }],
        "stability": {"runs": [{"run_id": "ewc-25-0", "first_unstable": 3, "blackout_task": 3, "agree": True}],
                      "share_within_one": 0.8, "n_compared": 10},
    }


class Tables(HTMLParser):
    """Counts body rows of each table with an id."""

    def __init__(self):
        super().__init__()
        self.rows: dict[str, int] = {}
        self._table = None
        self._in_body = False

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self._table = dict(attrs).get("id")
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body and self._table:
            self.rows[self._table] = self.rows.get(self._table, 0) + 1

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._table = None


def table_rows(text: str) -> dict[str, int]:
    parser = Tables()
    parser.feed(text)
    return parser.rows


# -- content -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    results = sweep()
    path = write_report(tmp_path_factory.mktemp("full") / "report.html", results, analysis_for(results),
                        title="Width <sweep> & EWC", study={"grid": {"hidden": list(WIDTHS)}, "note": "<b>x</b>"})
    return path, results


def test_report_content(full_report):
    path, results = full_report
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "<title>Width &lt;sweep&gt; &amp; EWC</title>" in text
    assert "method=ewc &lt;lam=15&gt; &amp; co" in text and "<lam=15>" not in text
    assert "blackout task ≈ 0.0123 × width + 2.5" in text
    assert "interval 0.0101 to 0.0145" in text and "R² = 0.981" in text
    assert "No power law was fitted: too few uncensored widths." in text
    assert "The linear law fits better." in text
    assert "3 censored" in text
    assert "9 of 12 runs blacked out (cause: collapsed 9)" in text
    assert "In 80% of the 10 runs compared" in text
    rows = table_rows(text)
    assert rows["runs"] == len(results) and rows["laws"] == 1
    assert text.count("<details><summary><code>") == len(results)
    assert "&lt;b&gt;x&lt;/b&gt;" in text and "<b>x</b>" not in text  # the study spec, escaped
    for name in ("python", "numpy", "matplotlib", "torch"):
        assert f"<th>{name}</th>" in text
    # capacity, stability, methods, then matrix and curves of the narrowest and widest run
    assert text.count('src="data:image/png;base64,') == 3 + 2 * 2
    assert "skipped" not in text


def test_report_is_self_contained(full_report):
    text = full_report[0].read_text(encoding="utf-8")
    assert "<script" not in text and "<link" not in text and "@import" not in text
    assert not re.search(r'(src|href)\s*=\s*"(?!data:)', text)
    assert not re.search(r"url\(", text)
    for b64 in re.findall(r'src="data:image/png;base64,([^"]+)"', text):
        assert base64.b64decode(b64, validate=True)[:8] == b"\x89PNG\r\n\x1a\n"


def test_representatives_are_first_seed_of_narrowest_and_widest():
    results = sweep()
    reps = representative_runs(results, analysis_for(results))
    assert [r["run_id"] for _, r in reps] == ["ewc-25-0", "ewc-400-0"]
    assert "narrowest width (25)" in reps[0][0]
    reps = representative_runs(results, None)
    assert [r["run_id"] for _, r in reps] == ["ewc-25-0", "ewc-400-0"]


def test_report_zero_blackouts(tmp_path):
    results = sweep(blackouts=False)
    text = write_report(tmp_path / "r.html", results, analysis_for(results), title="none").read_text()
    assert "No run blacked out: all 12 ran" in text
    assert table_rows(text)["runs"] == 12
    assert text.count("data:image/png;base64,") == 7


def test_report_all_censored(tmp_path):
    results = sweep(blackouts=False)
    text = write_report(tmp_path / "r.html", results, analysis_for(results, all_censored=True),
                        title="censored").read_text()
    assert "Every run was censored" in text


def test_report_single_run_no_analysis(tmp_path):
    results = [make_result("only", tasks=6, blackout=5)]
    out = tmp_path / "folder"
    out.mkdir()
    path = write_report(out, results, None, title="single")
    assert path == out / "report.html"
    text = path.read_text()
    assert "Capacity figure skipped: no capacity analysis was given." in text
    assert "No capacity analysis was given, so no law was fitted." in text
    assert "In 100% of the 1 runs compared (computed here" in text  # s > 2 first at task 5, the blackout task
    assert table_rows(text)["runs"] == 1
    assert text.count("data:image/png;base64,") == 4  # stability, methods, matrix, curves


def test_report_degenerate_inputs(tmp_path):
    text = write_report(tmp_path / "empty.html", [], None, title="empty").read_text()
    assert "No runs were given" in text and "skipped" in text
    one = make_result("one", tasks=3)
    one["diagnostics"] = []
    analysis = {"axis": "width", "groups": [{"label": "g", "points": [{"x": 50, "y": 3, "censored": True}],
                                             "linear": None, "power": None, "better": None}], "stability": None}
    text = write_report(tmp_path / "one.html", [one], analysis, title="one").read_text()
    assert "it needs runs at two or more values of width, and there is one" in text
    assert "Stability figure skipped: no run recorded a positive stability number." in text
    assert "No linear law was fitted." in text and "Neither law is preferred." in text


# -- real browser --------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]

FIGURES_JS = """(async () => {
  const imgs = [...document.images];
  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
  const box = e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; };
  const shown = e => e.checkVisibility({checkOpacity: true, checkVisibilityCSS: true});
  return [
    ...imgs.map(i => ({kind: "img", name: i.alt, size: box(i), shown: shown(i), complete: i.complete,
                       natural: [i.naturalWidth, i.naturalHeight]})),
    ...[...document.querySelectorAll("svg:not(svg svg)")].map(s => ({kind: "svg", name: s.id, size: box(s),
                                                                     shown: shown(s)})),
  ];
})()"""


class Chromium:
    """Headless Chromium over the DevTools pipe: commands out on fd 3, replies and events back on fd 4."""

    def __init__(self, profile: Path, log: Path, timeout: float = 30.0):
        to_child, self._w = os.pipe()
        self._r, from_child = os.pipe()
        # The pipes arrive as the shell's stdin and stdout and are moved to fds 3 and 4 for Chromium,
        # which needs no Python code between fork and exec.
        wire = 'exec "$@" 3<&0 4>&1 </dev/null >/dev/null'
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(
                ["/bin/sh", "-c", wire, "sh", CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                 "--remote-debugging-pipe", "about:blank"],
                stdin=to_child, stdout=from_child, stderr=err, start_new_session=True)
        os.close(to_child)
        os.close(from_child)
        self.timeout = timeout
        self.log = log
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []

    def _recv(self) -> dict:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"Chromium sent nothing for {self.timeout:g} s (its stderr: {self.log})")
            if select.select([self._r], [], [], left)[0]:
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the DevTools pipe (exit code {self.proc.poll()}, "
                                       f"its stderr: {self.log})")
                self._buf += chunk
        raw, _, self._buf = self._buf.partition(b"\0")
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._recv()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str) -> None:
        while not any(e.get("method") == method and e.get("sessionId") == session for e in self.events):
            self.events.append(self._recv())

    def close(self) -> None:
        try:
            self.send("Browser.close")
            self.proc.wait(timeout=10)
        except Exception:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        finally:
            os.close(self._w)
            os.close(self._r)

    def check_page(self, path: Path) -> dict:
        """Load a file in a fresh tab; return its console errors, outside requests, figures and a screenshot."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable", session=sid)
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session=sid)
        start = len(self.events)
        self.send("Page.navigate", {"url": path.resolve().as_uri()}, session=sid)
        self.wait_for("Page.loadEventFired", sid)
        figures = self.send("Runtime.evaluate", {"expression": FIGURES_JS, "awaitPromise": True,
                                                 "returnByValue": True}, session=sid)["result"]["value"]
        size = self.send("Page.getLayoutMetrics", session=sid)["cssContentSize"]
        shot = self.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 12000), "scale": 1},
        }, session=sid)
        self.send("Target.closeTarget", {"targetId": target})
        mine = [e for e in self.events[start:] if e.get("sessionId") == sid]
        errors = []
        for e in mine:
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append(" ".join(str(a.get("value", a.get("description"))) for a in p.get("args", [])))
            elif e["method"] == "Runtime.exceptionThrown":
                errors.append(p["exceptionDetails"].get("text", "exception"))
            elif e["method"] == "Log.entryAdded" and p["entry"].get("level") == "error":
                errors.append(p["entry"].get("text", ""))
        outside = [e["params"]["request"]["url"] for e in mine if e["method"] == "Network.requestWillBeSent"
                   and not e["params"]["request"]["url"].startswith(("file:", "data:"))]
        return {"errors": errors, "outside": outside, "figures": figures,
                "screenshot": base64.b64decode(shot["data"])}


def problems(check: dict) -> list[str]:
    """Everything wrong with a checked page, as readable lines; empty means it displays correctly."""
    out = [f"console error: {e}" for e in check["errors"]]
    out += [f"outside request: {u}" for u in check["outside"]]
    if not check["figures"]:
        out.append("no figure on the page")
    for f in check["figures"]:
        w, h = f["size"]
        if not f["shown"] or w <= 0 or h <= 0:
            out.append(f"{f['kind']} {f['name']!r} not displayed (shown={f['shown']}, size={w}x{h})")
        if f["kind"] == "img" and not (f["complete"] and min(f["natural"]) > 0):
            out.append(f"img {f['name']!r} not decoded (natural size {f['natural']})")
    return out


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian package 'chromium'; CI installs it)")
    home = tmp_path_factory.mktemp("chromium")
    chromium = Chromium(home / "profile", home / "stderr.txt")
    try:
        chromium.send("Browser.getVersion")
        yield chromium
    finally:
        chromium.close()


def assert_screenshot(png: bytes, keep: Path) -> None:
    from PIL import Image

    keep.write_bytes(png)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    with Image.open(io.BytesIO(png)) as im:
        assert im.width >= 1000 and im.height >= 900
        pixels = np.asarray(im.convert("RGB").resize((im.width // 8, im.height // 8)))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # text and plots, not a blank page


def test_browser_full_report(browser, full_report, tmp_path):
    check = browser.check_page(full_report[0])
    assert problems(check) == []
    assert len(check["figures"]) == 7
    assert all(f["size"][0] > 300 for f in check["figures"])
    assert_screenshot(check["screenshot"], tmp_path / "full.png")


def test_browser_single_run_report(browser, tmp_path):
    path = write_report(tmp_path / "single.html", [make_result("only", tasks=5, blackout=4)], None, title="one")
    check = browser.check_page(path)
    assert problems(check) == []
    assert len(check["figures"]) == 4
    assert_screenshot(check["screenshot"], tmp_path / "single.png")


def test_browser_check_catches_broken_figure(browser, full_report, tmp_path):
    text = full_report[0].read_text(encoding="utf-8")
    broken = tmp_path / "broken.html"
    broken.write_text(text.replace("<figure>", '<figure><img src="data:image/png;base64,bm90IGEgcG5n" alt="bad">', 1),
                      encoding="utf-8")
    found = problems(browser.check_page(broken))
    assert any("'bad' not decoded" in p for p in found), found


def test_browser_check_catches_console_error_and_hidden_figure(browser, full_report, tmp_path):
    text = full_report[0].read_text(encoding="utf-8")
    page = tmp_path / "noisy.html"
    page.write_text(text.replace("</body>", '<script>console.error("deliberate")</script></body>')
                    .replace('alt="methods"', 'alt="methods" style="display:none"'), encoding="utf-8")
    found = problems(browser.check_page(page))
    assert "console error: deliberate" in found
    assert any("'methods' not displayed" in p for p in found), found
