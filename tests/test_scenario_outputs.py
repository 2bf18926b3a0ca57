"""Every output says which scenario and which data split a number belongs to."""

import json
import subprocess
import sys

import pytest

from blackout.experiment.result import Result


def _cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "blackout", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def _labelled(data: dict, **cfg) -> Result:
    """A stored-looking run: only the fields the labels read are filled."""
    config = {"data": {"dataset": "mnist", "stream": "permuted", "train_limit": 0, "test_limit": 0, **cfg}}
    return Result("r", "0", 0, config, 0, data, None, [], {}, None)


@pytest.mark.parametrize(
    "data, cfg, split",
    [
        (
            {"n_train": 8000, "n_test": 2000, "note": "only the 10,000 test images were found in d: split into ..."},
            {},
            "test-only split 8,000/2,000",
        ),
        (
            {"n_train": 60000, "n_test": 10000, "note": "the standard split: 60,000 train / 10,000 test images from d"},
            {},
            "standard split 60,000/10,000",
        ),
        (
            {"n_train": 60000, "n_test": 10000, "note": ""},
            {"train_limit": 8000, "test_limit": 2000},  # an archive's full data
            "standard split 60,000/10,000 (first 8,000 train, first 2,000 test used)",
        ),
        ({}, {}, "split not recorded"),
    ],
)
def test_the_split_is_named_from_what_the_run_recorded(data, cfg, split):
    assert _labelled(data, **cfg).split == split


@pytest.mark.parametrize(
    "cfg, scenario",
    [
        ({"stream": "split", "multi_head": True}, "task"),  # archived before the setting
        ({"stream": "split", "multi_head": False}, "class"),
        ({"stream": "permuted", "multi_head": False}, "domain"),
        ({"stream": "split", "scenario": "domain"}, "domain"),
    ],
)
def test_the_scenario_of_new_and_archived_configs(cfg, scenario):
    assert _labelled({}, **cfg).scenario == scenario


def test_run_and_analyze_name_the_scenario_and_the_split(tmp_path):
    out = _cli(
        "run",
        "--dataset",
        "digits",
        "--stream",
        "split",
        "--tasks",
        "2",
        "--scenario",
        "domain",
        "--iterations",
        "30",
        "--sharpness",
        "0",
        "--hidden",
        "16",
        "--out",
        str(tmp_path / "run"),
    )
    assert out.returncode == 0, out.stderr
    assert "(1,437 train / 360 test) · digits split 1,437/360 · domain-incremental" in out.stdout

    from blackout.api import run
    from tests.conftest import small

    runs = [
        run(small(stream="split", tasks=2, scenario=sc, iterations=30, sharpness=0, hidden=(w,), method="sgd"))
        for sc in ("task", "class")
        for w in (16, 32)
    ]
    archive = tmp_path / "s.jsonl"
    archive.write_text("\n".join(json.dumps(r.to_dict()) for r in runs) + "\n")
    analysis = _cli("analyze", str(archive), "--bootstrap", "5")
    assert analysis.returncode == 0, analysis.stderr
    lines = analysis.stdout.splitlines()
    assert "data: digits split · class-incremental · digits split 1,437/360" in lines
    assert "data: digits split · task-incremental · digits split 1,437/360" in lines
    assert "[scenario=task]" in lines and "[scenario=class]" in lines
