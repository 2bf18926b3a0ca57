"""The study commands as a user runs them: sweep, analyze, export, report, demo."""

import csv
import json
import subprocess
import sys

import pytest

SMALL = [
    "--dataset",
    "digits",
    "--tasks",
    "6",
    "--iterations",
    "150",
    "--lam",
    "40",
    "--hidden",
    "8,32",
    "--seeds",
    "0-1",
    "--jobs",
    "2",
]


def blackout(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "blackout.cli", *args], capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    path = tmp_path_factory.mktemp("s") / "study"
    p = blackout("sweep", str(path), *SMALL)
    assert p.returncode == 0, p.stderr
    assert "4 runs · 0 already done · 4 ran · 0 failed" in p.stdout
    # not a terminal: plain progress lines with done/total, failures and an ETA, not a bar
    lines = p.stderr.strip().splitlines()
    assert lines[0] == "sweep: 4 runs, 4 to do, on 2 local processes"
    progress = [ln for ln in lines[1:] if ln.startswith("[")]
    assert progress and progress[-1].startswith("[4/4] ") and "0 failed" in progress[-1] and "ETA 0s" in progress[-1]
    assert all("\r" not in ln and "run/s" not in ln for ln in lines)
    return path


def test_analyze_prints_the_law_and_json_agrees_with_the_store(study):
    p = blackout("analyze", str(study), "--json")
    assert p.returncode == 0, p.stderr
    a = json.loads(p.stdout)
    assert a["axis"] == "width" and a["n_runs"] == 4
    [group] = a["groups"]
    assert sorted(pt["x"] for pt in group["points"]) == [8, 8, 32, 32]
    text = blackout("analyze", str(study)).stdout
    assert "capacity axis: width" in text and "blackout task: mean" in text


def test_export_csv_has_one_row_per_run(study, tmp_path):
    out = tmp_path / "runs.csv"
    p = blackout("export", str(study), "--format", "csv", "--out", str(out))
    assert p.returncode == 0, p.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"done"}
    parquet = blackout("export", str(study), "--format", "parquet")
    assert parquet.returncode == 0 and (study / "results.parquet").exists()


def test_report_is_written_with_figures(study):
    p = blackout("report", str(study), "--svg")
    assert p.returncode == 0, p.stderr
    html = (study / "report.html").read_text()
    assert "Capacity law" in html and html.count("data:image/png;base64") >= 3
    assert (study / "figures" / "capacity.svg").exists() and (study / "figures" / "capacity.png").exists()
    assert blackout("report", str(study)).returncode == 0  # PNG only: the SVG of an earlier report goes
    assert not (study / "figures" / "capacity.svg").exists() and (study / "figures" / "capacity.png").exists()


def test_rerun_does_nothing_new(study):
    p = blackout("sweep", str(study), *SMALL)
    assert p.returncode == 0 and "4 already done · 0 ran" in p.stdout


def test_bad_sweep_input_fails_before_any_run(tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text("[base]\ntasks = 3\n[grid]\nhidden = [[10], [20]]\nlamda = [1, 2]\n")
    p = blackout("sweep", str(tmp_path / "s"), "--spec", str(spec))
    assert p.returncode == 2 and "bad.toml:5: unknown setting 'lamda'" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()  # nothing started, nothing written
    p = blackout("sweep", str(tmp_path / "s"), "--lr", "0.1,0")
    assert p.returncode == 2 and "lr: expected a learning rate > 0, got 0" in p.stderr


def test_store_of_another_study_is_refused_and_kept(study, tmp_path):
    spec = tmp_path / "other.toml"
    spec.write_text('study = "other"\n[base]\ntasks = 2\n[grid]\nseed = [0, 1]\n')
    before = (study / "results.sqlite").read_bytes()
    p = blackout("sweep", str(study), "--spec", str(spec))
    assert p.returncode == 2 and "belongs to study" in p.stderr and "other" in p.stderr
    assert (study / "results.sqlite").read_bytes() == before


def test_analyze_without_a_study_is_a_clear_error(tmp_path):
    p = blackout("analyze", str(tmp_path))
    assert p.returncode == 2 and "no study here" in p.stderr


@pytest.mark.slow
def test_demo_shows_blackout_moving_with_width(tmp_path):
    """The README's main command: the report is written and the EWC blackout task grows with width."""
    p = blackout("demo", "--out", str(tmp_path / "demo"))
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "demo" / "report.html").exists() and "report:" in p.stdout
    a = json.loads(blackout("analyze", str(tmp_path / "demo"), "--json").stdout)
    ewc = next(g for g in a["groups"] if "ewc" in g["label"])
    assert ewc["linear"]["ok"] and ewc["linear"]["slope_ci"][0] > 0  # blackout moves out with width
    means = [s["mean"] for s in ewc["summary"]]
    assert means == sorted(means) and means[-1] > 2 * means[0]
    sgd = next(g for g in a["groups"] if "sgd" in g["label"])
    assert sgd["n_censored"] == sgd["n"]  # plain SGD forgets but never blacks out here
    # the README's numbers (4.7 at width 16, 20.3 at 256, slope 0.066; the predictor 13 of 15 right), give
    # or take what another CPU's rounding can move by a task
    assert abs(means[0] - 4.7) <= 1.5 and abs(means[-1] - 20.3) <= 3 and 0.05 < ewc["linear"]["slope"] < 0.085
    assert a["predictor"]["share_right"] >= 0.8
