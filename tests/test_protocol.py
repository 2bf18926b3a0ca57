"""Protocol details of published code offered as settings: padded and standardised images, head masking in
the class scenario, an optimizer kept across tasks; and the rule that a new setting keeps stored run ids."""

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from blackout import numerics
from blackout.api import run
from blackout.config import LATER, RunConfig
from blackout.experiment.data.sources import load_dataset, prepared
from blackout.experiment.data.streams import Task, rotate
from blackout.experiment.step import Adam
from blackout.experiment.train import Experiment
from tests.commandline import blackout as blackout_cli
from tests.conftest import small

ROOT = Path(__file__).resolve().parents[1]
FULL_MNIST = ROOT.parent / "shared" / "data" / "mnist-full"


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_stored_runs_keep_their_ids_and_a_later_setting_changes_the_id_only_off_its_default(monkeypatch):
    with gzip.open(ROOT / "docs" / "studies" / "keep-learning-projection.jsonl.gz", "rt") as fh:
        stored = [json.loads(next(fh)) for _ in range(3)]
    for r in stored:
        monkeypatch.setattr(numerics, "NUMERICS_VERSION", r["numerics"])  # the version that computed it
        assert RunConfig.from_dict(r["config"]).run_id == r["run_id"]
    cfg = RunConfig.from_dict(stored[0]["config"])
    assert "pad" in cfg.to_dict()["data"]  # recorded in the result's config, left out of its id at 0
    assert RunConfig.from_flat({"pad": 2}, cfg).run_id != cfg.run_id
    assert set(LATER) == {"pad", "normalize", "mask_unseen", "keep_optimizer"}


def test_padding_and_standardising_use_the_training_images_own_statistics(digits):
    data = prepared(digits, pad=2, normalize=True)
    raw_train = np.pad(digits.x_train.numpy(), ((0, 0), (0, 0), (2, 2), (2, 2)))
    raw_test = np.pad(digits.x_test.numpy(), ((0, 0), (0, 0), (2, 2), (2, 2)))
    mean, std = raw_train.astype(np.float64).mean(), raw_train.astype(np.float64).std(ddof=1)
    assert data.x_train.shape[2:] == (12, 12)
    np.testing.assert_allclose(data.x_train.numpy(), (raw_train - mean) / std, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(data.x_test.numpy(), (raw_test - mean) / std, rtol=1e-5, atol=1e-6)
    assert data.blank == pytest.approx(-mean / std) and data.x_train[0, 0, 0, 0] == pytest.approx(data.blank)
    assert prepared(digits, pad=2, normalize=True) is data and prepared(digits) is digits
    assert digits.x_train.shape[2:] == (8, 8)  # the loaded data is left as it was


@pytest.mark.skipif(not FULL_MNIST.is_dir(), reason="the full MNIST files are not beside the repository")
def test_mnist_padded_to_32x32_has_the_constants_of_hsu_et_al_s_loader():
    data = prepared(load_dataset("mnist", FULL_MNIST), pad=2, normalize=True)
    raw = load_dataset("mnist", FULL_MNIST).x_train.double()
    n = raw.numel() / 784 * 1024
    mean = float(raw.sum()) / n
    std = math.sqrt((float((raw**2).sum()) - n * mean**2) / (n - 1))
    assert (round(mean, 4), round(std, 4)) == (0.1000, 0.2752)  # transforms.Normalize((0.1000,), (0.2752,))
    assert data.blank == pytest.approx(-mean / std, rel=1e-6) and data.x_train.shape[1:] == (1, 32, 32)


def test_a_rotation_of_standardised_images_fills_its_corners_with_the_blank_pixel(digits):
    data = prepared(digits, normalize=True)
    x = digits.x_train[:5]
    mean, std = digits.x_train.double().mean(), digits.x_train.double().std()
    got = Task(1, angle=45.0, blank=data.blank).transform(data.x_train[:5])
    want = ((rotate(x, 45.0).double() - mean) / std).float()  # rotate the raw image, then standardise
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    blank = torch.full((1, 1, 8, 8), data.blank)
    torch.testing.assert_close(Task(1, angle=30.0, blank=data.blank).transform(blank), blank)


def last_layer(ex):
    return ex.net.weights[-1][0].detach().clone(), ex.net.biases[-1][0].detach().clone()


@pytest.mark.parametrize("mask", [True, False])
def test_masking_leaves_the_outputs_of_the_classes_still_to_come_untouched(mask):
    cfg = small(stream="split", tasks=3, scenario="class", class_order="natural", mask_unseen=mask, method="sgd")
    ex = Experiment([cfg])
    assert [t.scored_range for t in ex.streams.members[0].tasks] == [None] * 3  # predictions over every output
    for t in range(2):
        w0, b0 = last_layer(ex)
        ex.train_task(t)
        w1, b1 = last_layer(ex)
        moved = ((w1 != w0).any(1) | (b1 != b0)).tolist()
        seen = 2 * (t + 1)
        if mask:  # the loss covers outputs 0..seen-1: the classes of tasks 1 to t
            assert moved == [True] * seen + [False] * (10 - seen)
        else:
            assert all(moved)


def test_a_masked_task_s_loss_is_the_cross_entropy_over_the_classes_seen():
    from blackout.experiment.methods.base import task_loss

    cfg = small(stream="split", tasks=3, scenario="class", class_order="natural", mask_unseen=True, method="sgd")
    ex = Experiment([cfg])
    task = ex.streams.task(1)
    x, y = ex.streams.members[0].batch(task, "train", torch.arange(20))
    logits = ex.net(x[None])
    want = torch.nn.functional.cross_entropy(logits[0, :, :4], y)
    assert task.head_range == (0, 4)
    torch.testing.assert_close(task_loss(logits, y[None], task)[0], want)


def test_mask_unseen_needs_the_natural_class_order_in_one_line(tmp_path):
    r = blackout_cli(
        "run", "--dataset", "digits", "--stream", "split", "--tasks", "2", "--mask-unseen", "--out", str(tmp_path / "o")
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        "blackout: error: mask_unseen: masks the outputs after the classes seen so far, so it needs class_order "
        "natural (tasks of consecutive labels), got class_order seeded"
    ]


def test_a_kept_adam_continues_its_moments_into_the_next_task():
    fresh, kept = (
        run(small(optimizer="adam", lr=0.002, method="sgd", tasks=2, sharpness=0, keep_optimizer=k))
        for k in (False, True)
    )
    np.testing.assert_array_equal(fresh.acc[0], kept.acc[0])  # task 1 starts from a fresh optimizer either way
    assert not np.array_equal(fresh.acc[1], kept.acc[1])
    ex = Experiment([small(optimizer="adam", method="sgd", keep_optimizer=True)])
    assert ex.optimizer() is ex.optimizer()
    ex = Experiment([small(optimizer="adam", method="sgd")])
    assert ex.optimizer() is not ex.optimizer()


def test_a_kept_adam_that_sheds_a_member_steps_the_rest_as_torch_s_adam_would():
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(2, 3, 4, generator=gen) for _ in range(4)]
    p = torch.zeros(2, 3, 4)
    opt = Adam([p], torch.tensor([0.01, 0.003]))
    for g in grads[:3]:
        opt.step([p], [g])
    opt.select([1])
    p = p[[1]].clone()
    opt.step([p], [grads[3][[1]]])
    ref = torch.zeros(3, 4, requires_grad=True)
    torch_opt = torch.optim.Adam([ref], lr=0.003)
    for g in grads:
        ref.grad = g[1].clone()
        torch_opt.step()
    torch.testing.assert_close(p[0], ref.detach())
