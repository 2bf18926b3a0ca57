"""The blackout forecast and the plan: against hand computations, in a real run, and on the command line."""

import json
import math
import subprocess
import sys

import pytest

from blackout.api import config
from blackout.cli import main
from blackout.experiment import forecast as fc
from blackout.experiment.plan import largest, plan, round_down
from blackout.experiment.result import Result
from blackout.experiment.train import run
from blackout.study import plots
from blackout.study.predict import drift_rule, forecast_check, stability_rule
from tests.factory import make_result


def test_first_unstable_is_the_first_task_at_the_limit():
    assert fc.first_unstable([0.0, 0.9, 1.99, 2.0, 5.0]) == 4
    assert fc.first_unstable([0.0, None, 1.0]) is None


def test_forecast_is_where_the_line_through_s_reaches_the_level_plus_the_lag():
    # s_t = 0.3 (t - 1): the line reaches 2 at t = 1 + 2 / 0.3 = 7.67 -> task 8, + lag 1 = 9; the interval
    # scales g by 1.5 (1 + 2 / 0.45 = 5.44 -> 6 + 1 = 7) and by 0.5 (1 + 2 / 0.15 = 14.3 -> 15 + 1 = 16)
    f = fc.forecast([0.0, 0.3, 0.6, 0.9], [None, None, None], budget=30, s_at=2.0, lag=1, spread=0.5)
    assert (f.after, f.task, f.lo, f.hi, f.how) == (3, 9, 7, 16, "growth")
    # least squares through the origin over (1, 0.2), (2, 0.5): g = (0.2 + 1.0) / (1 + 4) = 0.24
    assert fc.growth([0.0, 0.2, 0.5]) == pytest.approx(0.24)
    f = fc.forecast([0.0, 0.2, 0.5], [None, None], budget=30, s_at=2.4, lag=0, spread=0.0)
    assert f.task == math.ceil(1 + 2.4 / 0.24) == 11 and f.confident is False  # after 2 tasks: not yet
    late = fc.forecast([0.0, 0.3, 0.6, 0.9], [None] * 3, budget=8, s_at=2.0, lag=1, spread=0.5)
    assert late.task is None and late.text() == "no blackout expected within the budget of 8 tasks"
    flat = fc.forecast([0.0, 0.0, 0.0], [None, None], budget=8)
    assert flat.task is None  # a penalty that does not grow forecasts no blackout
    with pytest.raises(ValueError, match="stability: expected 3 values"):
        fc.forecast([0.0, 0.3], [None, None], budget=8)


def test_the_drift_rule_overrides_the_line_once_it_fires():
    # task 3 ended with an unstable weight 1e13 from its anchor: task 4 starts with it, blackout expected at 5
    f = fc.forecast([0.0, 1.0, 2.05, 2.06], [None, 1.0, 1e13], budget=30)
    assert (f.task, f.lo, f.hi, f.how) == (5, 5, 6, "drift")
    steep = fc.forecast([0.0, 1.0, 1.5, fc.S_LIMIT + 0.01], [None, None, None], budget=30)
    assert steep.task == 3 + 1 + fc.LAG and steep.confident
    assert fc.forecast([0.0, 1.0, 1.5, 3.0], [None] * 3, budget=4).task is None  # it names task 5: past the budget


def test_recorded_forecasts_round_trip_and_none_is_budget_plus_one():
    rows = [
        {"task": 1, "stability": 0.0, "unstable_drift": None},
        {"task": 2, "stability": 0.1, "unstable_drift": None},
    ]
    d = fc.recorded(rows, 0.2, budget=10)  # g = 0.1: far past the budget
    assert d == {"forecast": 11, "forecast_lo": 11, "forecast_hi": None}
    assert fc.from_recorded({"task": 2, **d}, 10).task is None
    near = fc.recorded(rows, 0.2, budget=100)
    back = fc.from_recorded({"task": 2, **near}, 100)
    assert (back.after, back.task, back.lo, back.hi) == (2, near["forecast"], near["forecast_lo"], near["forecast_hi"])
    assert fc.from_recorded({"task": 1}, 10) is None
    assert fc.within(12, 10, 30, 2, 0.2) and not fc.within(13, 10, 30, 2, 0.2)
    assert fc.within(None, None, 30, 2, 0.2) and fc.within(None, 31, 30, 2, 0.2) and not fc.within(25, None, 30, 2, 0.2)


def result(stability, drift, blackout, tasks=12):
    diags = [{"task": i + 1, "stability": s, "unstable_drift": d} for i, (s, d) in enumerate(zip(stability, drift))]
    rows = [[0.9] * (i + 1) for i in range(len(diags))]
    return make_result(rows, tasks=tasks, blackout=blackout, cause="diverged" if blackout else None, diagnostics=diags)


def test_the_run_warnings_and_analyze_read_one_rule():
    """What `blackout run` says after each task (Watch) names the tasks that analyze's rules name."""
    cases = [
        result([0.0, 0.8, 1.6, 2.03, 2.04, 2.05, 2.05], [None, None, None, 10.0, 1e6, 1e13, 1e20], 7),
        result([0.0, 1.0, 1.9, 2.3, 4.0], [None, None, None, 5.0, None], 5),
        result([0.0, 0.1, 0.2, 0.3], [None] * 4, None),
    ]
    for r in cases:
        watch, said = fc.Watch(r.config["data"]["tasks"]), {}
        s, rows = r.diagnostic("stability"), r.diagnostics
        for t in range(1, len(rows)):  # after task t the next task's stability is known
            for kind, v in watch.after(t, rows[t - 1], s[t]):
                said.setdefault(kind, (t, v))
        warned = said.get("drift") or said.get("steep")
        assert (warned[1] if warned else None) == drift_rule(r)
        assert (said["unstable"][0] + 1 if "unstable" in said else None) == stability_rule(r)


def test_forecast_check_scores_each_horizon_against_the_truth():
    linear = [0.0] + [0.25 * t for t in range(1, 10)]  # g = 0.25: 1 + 2.4 / 0.25 = 10.6 -> 11, + 1 = 12
    runs = [
        result(linear, [None] * 10, 12, tasks=20),  # right
        result(linear, [None] * 10, 7, tasks=20),  # 12 against 7: wrong after 3 and after 5
        result([0.0, 1.0, 2.5], [None] * 3, 3, tasks=20),  # blacked out by task 3: nothing to forecast
        make_result([[0.9], [0.9, 0.9], [0.9] * 3, [0.9] * 4], tasks=20, method="sgd"),
    ]  # not forecast
    check = forecast_check(runs)
    h3, h5 = check.horizons
    assert (h3.k, h3.n, h3.n_right, h3.n_gone, check.n_left_out) == (3, 2, 1, 1, 1)
    assert (h5.k, h5.n, h5.n_right) == (5, 2, 1)
    assert check.runs[0].after[:2] == [2, 3] and check.runs[0].task[1] == 12
    fig = plots.figure_forecast(check, after=(3, 5))
    (three,) = [c for c in fig.axes[0].collections if c.get_gid() == "after-3"]
    assert sorted(map(tuple, three.get_offsets().tolist())) == [(7, 12), (12, 12)]  # (observed, forecast)
    with pytest.raises(plots.NothingToPlot, match="no run made a forecast"):
        plots.figure_forecast(forecast_check(runs[3:]))


def test_a_run_records_its_forecast_per_task_as_the_pure_function_computes_it(tmp_path):
    r = run(config("digits", tasks=6, hidden=16, lam=15, iterations=60))
    s, drift = r.diagnostic("stability"), r.diagnostic("unstable_drift")
    assert r.diagnostics[0].get("forecast") is None  # from the second task on
    for k in range(2, r.tasks_run):  # the next task's stability is the one recorded when it trained
        f = fc.forecast(s[: k + 1], drift[:k], 6)
        d = r.diagnostics[k - 1]
        assert (d["forecast"], d["forecast_lo"]) == (f.task or 7, f.lo or 7)
    from blackout.experiment.outputs import diagnostics_csv

    head = diagnostics_csv(r.to_dict()["diagnostics"]).splitlines()[0].split(",")
    assert {"forecast", "forecast_lo", "forecast_hi"} <= set(head)
    si = run(config("digits", tasks=3, hidden=16, method="si", iterations=30))
    assert all("forecast" not in d for d in si.diagnostics)  # not designed for SI: not made


def probe_result(g: float, tasks: int = 3) -> Result:
    return result([g * t for t in range(tasks)], [None] * tasks, None, tasks=tasks)


def test_plan_gives_the_largest_value_whose_forecast_interval_clears_the_budget():
    budget, g = 20, 0.3
    calls = []

    def fake(cfg, on_task):
        calls.append(cfg)
        on_task(2, {"next_stability": 3 * g})
        return probe_result(g)

    p = plan(config("digits", lam=15), budget, train=fake)
    assert calls[0].data.tasks == 3 and p.config.data.tasks == budget and p.config.method.lam == p.value

    def lowest(lam):  # the interval's first task at lam, by the forecast itself
        gl = g * lam / 15
        return fc.forecast([gl * t for t in range(4)], [None] * 3, 10**6).lo

    assert lowest(p.value) > budget  # survives, with the interval as its margin ...
    assert lowest(p.value * 1.02) <= budget  # ... and 2% more would not
    assert p.value == round_down(15 * largest(g, budget) / g) and round_down(123.456) == 123.0
    assert p.curve[:3] == pytest.approx([0.0, g * p.value / 15, 2 * g * p.value / 15])
    lr = plan(config("digits", lam=15, lr=0.1), budget, knob="lr", train=fake)
    assert lr.value == pytest.approx(0.1 * p.value / 15, rel=2e-3) and lr.config.train.lr == lr.value


def test_plan_by_default_trains_the_probe_with_its_task_callback(monkeypatch):
    from blackout.experiment import train

    g, seen = 0.3, {}

    def fake_run(cfg, data_dir=None, on_task=None):
        seen.update(data_dir=data_dir, on_task=on_task)
        on_task(2, {"next_stability": 3 * g})  # the next task's stability reaches the forecast
        return probe_result(g)

    monkeypatch.setattr(train, "run", fake_run)
    p = plan(config("digits", lam=15), 20)
    assert seen["data_dir"] is None and callable(seen["on_task"])
    assert p.growth == pytest.approx(g)


def cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "blackout.cli", *args], check=False, capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_plan_on_the_command_line_and_apply(tmp_path):
    p = cli("plan", "--preset", "digits", "--hidden", "16", "--iterations", "60", "--budget", "8", "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["knob"] == "lam" and 0 < out["value"] and out["config"]["method"]["lam"] == out["value"]
    assert out["config"]["data"]["tasks"] == 8 and out["probe_tasks"] == 3 and len(out["curve"]) == 8
    assert out["forecast"]["lo"] is None or out["forecast"]["lo"] > 8
    p = cli(
        "plan",
        "--preset",
        "digits",
        "--hidden",
        "16",
        "--iterations",
        "60",
        "--budget",
        "5",
        "--apply",
        "--quiet",
        "--out",
        str(tmp_path / "planned"),
    )
    assert p.returncode == 0, p.stderr
    res = json.loads((tmp_path / "planned" / "result.json").read_text())
    lam = res["config"]["method"]["lam"]
    assert res["config"]["data"]["tasks"] == 5 and lam > 0 and float(f"{lam:.3g}") == lam


@pytest.mark.parametrize(
    "args, message",
    [
        (("--budget", "3"), "--budget: expected more tasks than the probe's 3, got 3"),
        (
            ("--budget", "8", "--method", "si"),
            "method: the forecast is designed for ewc with the sgd optimizer, got si",
        ),
        (("--budget", "8", "--probe", "1"), "--probe: expected at least 2 tasks"),
        (("--budget", "8", "--for", "gamma"), "argument --for: invalid choice: 'gamma'"),
        (
            (
                "--budget",
                "0",
            ),
            "argument --budget: expected an integer >= 1, got '0'",
        ),
    ],
)
def test_bad_plan_input_is_one_line_and_exit_2(args, message, capsys):
    assert main(["plan", "--preset", "digits", *args]) == 2
    out, err = capsys.readouterr()
    assert message in err and len(err.strip().splitlines()) == 1 and out == "", err


def test_bad_plan_input_from_a_fresh_process():
    p = cli("plan", "--preset", "digits", "--budget", "8", "--method", "sgd")
    assert p.returncode == 2 and p.stdout == ""
    assert (
        p.stderr
        == "blackout: error: method: the forecast is designed for ewc with the sgd optimizer, got sgd with sgd\n"
    )


def test_run_says_the_forecast_on_the_terminal(tmp_path, capsys):
    p = cli(
        "run",
        "--preset",
        "digits",
        "--hidden",
        "32",
        "--lam",
        "15",
        "--tasks",
        "5",
        "--iterations",
        "60",
        "--out",
        str(tmp_path / "r"),
    )
    assert p.returncode == 0, p.stderr
    said = [line for line in p.stderr.splitlines() if line.startswith("blackout: forecast after task")]
    assert said and said[0].startswith("blackout: forecast after task 3: ")
    table = p.stdout[p.stdout.index(" task      loss") :].splitlines()
    assert table[0].endswith("dead units  forecast") and table[1].endswith("  ")  # none made after task 1
    rows = (tmp_path / "r" / "diagnostics.csv").read_text().splitlines()
    third = dict(zip(rows[0].split(","), rows[3].split(",")))
    f = third["forecast"]
    assert (f"blackout expected at task {f} " in said[0]) or ("no blackout expected" in said[0] and int(f) == 6)
    assert (
        main(
            [
                "run",
                "--preset",
                "digits",
                "--hidden",
                "8",
                "--method",
                "si",
                "--tasks",
                "2",
                "--iterations",
                "10",
                "--out",
                str(tmp_path / "si"),
                "--json",
            ]
        )
        == 0
    )
    assert "no forecast of the blackout task for si: it is designed and scored for ewc only" in capsys.readouterr().err


def test_plan_from_python_probes_and_plans():
    import blackout

    p = blackout.plan("digits", budget=6, hidden=8, iterations=20, knob="lr")
    assert p.probe.tasks_run == 3 and p.probe.config["data"]["tasks"] == 3 and p.knob == "lr"
    assert p.config.train.lr == p.value and p.config.data.tasks == 6 and p.config.method.lam == 15
    assert p.growth > 0 and p.probe.diagnostic("stability")[0] == 0.0
    assert p.curve[1] == pytest.approx(p.growth * p.value / 0.1)  # s scales with lr
