"""The command line as a user meets it: a real subprocess, its output, its errors and exit codes."""

import json
import subprocess
import sys

import pytest

from blackout.cli import main


def blackout(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "blackout.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def test_run_prints_matrix_metrics_stability_and_verdict(tmp_path):
    p = blackout("run", "--tasks", "3", "--hidden", "32", "--iterations", "150", "--out", str(tmp_path / "r"))
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "accuracy (%) on task j" in out and "average accuracy" in out and "stability" in out
    assert "no blackout in 3 tasks" in out or "BLACKOUT at task" in out
    saved = json.loads((tmp_path / "r" / "result.json").read_text())
    assert saved["config"]["model"]["hidden"] == [32] and saved["seed"] == 0 and saved["version"]
    assert saved["environment"]["torch"]
    rows = (tmp_path / "r" / "accuracy.csv").read_text().splitlines()
    assert rows[0] == "after_task,task_1,task_2,task_3" and len(rows) == 4
    # the printed matrix shows the same numbers as the saved one
    first = f"{100 * saved['acc'][0][0]:6.1f}"
    assert first in out


def test_json_output_and_config_file_with_flag_override(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[data]\ntasks = 2\n[model]\nhidden = [16]\n[method]\nmethod = "l2"\nlam = 0.5\n[train]\niterations = 100\n'
    )
    p = blackout("run", "--config", str(cfg), "--lam", "0.25", "--json", "--out", str(tmp_path / "r"))
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["config"]["method"] == {**d["config"]["method"], "method": "l2", "lam": 0.25}
    assert d["config"]["model"]["hidden"] == [16] and d["tasks_run"] == 2


@pytest.mark.parametrize(
    "args,message",
    [
        (["run", "--method", "ewk"], "method: expected one of"),
        (["run", "--lr", "0"], "lr: expected a learning rate > 0, got 0"),
        (["run", "--hidden", "0"], "hidden: expected one or more widths >= 1"),
        (["run", "--tasks", "0"], "tasks: expected at least 1, got 0"),
        (["run", "--lam", "-1"], "lam: expected lambda >= 0, got -1"),
        (["run", "--dataset", "cifar"], "dataset: expected one of digits, mnist, fashion-mnist, got 'cifar'"),
        (["run", "--stream", "spiral"], "stream: expected one of permuted, split, rotated"),
        (["run", "--config", "/nonexistent/x.toml"], "/nonexistent/x.toml: no such config file"),
        (["run", "--dataset", "mnist", "--data-dir", "/nonexistent/mnist"], "/nonexistent/mnist"),
        (["run", "--bogus-flag"], "unrecognized arguments: --bogus-flag"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, message):
    p = blackout(*args)
    assert p.returncode == 2
    assert message in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and p.stderr.startswith("blackout: error:")
    assert "Traceback" not in p.stderr


def test_corrupt_data_file_is_named(tmp_path, mnist_dir):
    import shutil

    bad = tmp_path / "mnist"
    bad.mkdir()
    shutil.copy(mnist_dir / "t10k-labels-idx1-ubyte.gz", bad)
    (bad / "t10k-images-idx3-ubyte.gz").write_bytes((mnist_dir / "t10k-images-idx3-ubyte.gz").read_bytes()[:5000])
    p = blackout("run", "--dataset", "mnist", "--data-dir", str(bad), "--tasks", "1")
    assert p.returncode == 2 and "t10k-images-idx3-ubyte.gz" in p.stderr and "Traceback" not in p.stderr


def test_file_and_flags_are_validated_together(tmp_path, capsys):
    """lwf is valid only with a multi-head split stream: a file naming lwf and flags naming the stream."""
    cfg = tmp_path / "lwf.toml"
    cfg.write_text('[method]\nmethod = "lwf"\n[data]\ntasks = 3\n')
    assert main(["run", "--config", str(cfg), "--stream", "split", "--multi-head", "--check"]) == 0
    assert json.loads(capsys.readouterr().out)["method"]["method"] == "lwf"
    assert main(["run", "--config", str(cfg), "--check"]) == 2
    assert "lwf needs a multi-head split stream" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text('[train]\nlr = "fast"\n')
    assert main(["run", "--config", str(bad)]) == 2
    assert "bad.toml: lr: expected a number, got 'fast'" in capsys.readouterr().err


def test_unreadable_config_names_file_and_line(tmp_path):
    f = tmp_path / "broken.toml"
    f.write_text("[train]\nlr = = 3\n")
    assert main(["run", "--config", str(f)]) == 2


def test_check_prints_the_canonical_config_without_training(capsys):
    assert main(["run", "--preset", "seed-blog", "--check"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["method"]["lam"] == 15.0 and cfg["model"]["hidden"] == [50] and cfg["train"]["iterations"] == 800
    assert cfg["data"]["dataset"] == "mnist" and cfg["method"]["fisher_samples"] == 200


@pytest.mark.parametrize(
    "flags,value",
    [
        (["--stop-on-blackout"], True),
        (["--stop-on-blackout", "false"], False),
        (["--stop-on-blackout=no"], False),
        (["--no-stop-on-blackout"], False),
        ([], True),
    ],
)
def test_a_switch_takes_a_value_or_none_in_run(flags, value):
    p = blackout("run", "--preset", "digits", "--tasks", "2", *flags, "--check")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.splitlines()[-1])["blackout"]["stop_on_blackout"] is value


def test_a_switch_is_written_alike_in_sweep_and_a_bad_value_is_one_line(tmp_path):
    base = ["sweep", str(tmp_path / "s"), "--dataset", "digits", "--method", "ewc-l1", "--tasks", "2", "--check"]
    for flags, runs in ((["--prox"], 1), (["--no-prox"], 1), (["--prox", "true,false"], 2)):
        p = blackout(*base, *flags)
        assert p.returncode == 0 and p.stdout.startswith(f"{runs} runs, every combination valid"), (flags, p.stderr)
    for argv, message in (
        (["run", "--prox", "maybe", "--method", "ewc-l1", "--check"], "prox: expected true or false, got 'maybe'"),
        (["run", "--no-prox=x", "--method", "ewc-l1", "--check"], "--no-prox: ignored explicit argument 'x'"),
    ):
        p = blackout(*argv)
        assert p.returncode == 2 and message in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert "Traceback" not in p.stderr
