"""Task streams: each transform checked against an independent construction."""

import numpy as np
import pytest
import torch

from blackout.config import DataConfig
from blackout.experiment.data.sources import Dataset, load_dataset
from blackout.experiment.data.streams import Stream, rotate
from blackout.errors import ConfigError


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_permuted_applies_one_fixed_permutation_per_task(digits):
    s = Stream(DataConfig(stream="permuted", tasks=3, keep_first=True), digits, seed=5)
    assert s.tasks[0].perm is None  # keep_first: task 1 is the original images
    x, y = s.batch(s.tasks[2], "train", torch.tensor([4, 9]))
    perm = s.tasks[2].perm.numpy()
    raw = digits.x_train[[4, 9]].numpy().reshape(2, -1)
    np.testing.assert_array_equal(x.numpy().reshape(2, -1), raw[:, perm])
    assert torch.equal(y, digits.y_train[[4, 9]])
    assert sorted(perm.tolist()) == list(range(64))
    again = Stream(DataConfig(stream="permuted", tasks=3, keep_first=True), digits, seed=5)
    assert torch.equal(again.tasks[2].perm, s.tasks[2].perm)
    assert not torch.equal(
        Stream(DataConfig(stream="permuted", tasks=3), digits, seed=6).tasks[2].perm, s.tasks[2].perm
    )


def test_split_tasks_hold_disjoint_classes(digits):
    s = Stream(DataConfig(stream="split", tasks=5, classes_per_task=2), digits, seed=0)
    groups = [set(t.classes) for t in s.tasks]
    assert set().union(*groups) == set(range(10)) and sum(map(len, groups)) == 10
    for t in s.tasks:
        _, y = s.batch(t, "test")
        assert set(y.tolist()) == set(t.classes)  # single head: original labels, all 10 outputs
        assert len(y) == int(sum((digits.y_test == c).sum() for c in t.classes))
    assert s.n_out == 10
    _, y0 = s.batch(s.tasks[0], "test")  # chance: the test share of the task's most frequent class
    assert s.chance(s.tasks[0]) == pytest.approx(max((y0 == c).float().mean().item() for c in s.tasks[0].classes))
    assert 0.45 < s.chance(s.tasks[0]) < 0.6


def test_multi_head_split_renumbers_labels_and_slices_its_head(digits):
    s = Stream(DataConfig(stream="split", tasks=3, classes_per_task=3, scenario="task"), digits, seed=0)
    assert s.n_out == 9
    t = s.tasks[1]
    _, y = s.batch(t, "train")
    raw = digits.y_train[s.split(t, "train").idx]
    assert torch.equal(y, torch.tensor([t.classes.index(c) for c in raw.tolist()]))
    assert t.head_range == (3, 6)
    _, yt = s.batch(t, "test")
    assert s.chance(t) == pytest.approx(torch.bincount(yt).max().item() / len(yt))


def test_split_that_needs_more_classes_than_exist_is_rejected_before_any_data_is_read():
    from blackout.config import RunConfig

    with pytest.raises(
        ConfigError, match=r"tasks: a split stream needs tasks x classes_per_task <= 10 classes, got 6 x 2"
    ):
        RunConfig.from_flat({"stream": "split", "tasks": 6, "classes_per_task": 2})


def test_rotation_by_90_degrees_is_a_quarter_turn():
    x = torch.rand(3, 1, 8, 8)
    # A quarter turn maps pixel centres onto pixel centres, so bilinear sampling is exact.
    turned = rotate(x, 90.0)
    candidates = [torch.rot90(x, k, dims=(2, 3)) for k in (1, 3)]
    assert min((turned - c).abs().max().item() for c in candidates) < 1e-5
    assert torch.allclose(rotate(x, 0.0), x, atol=1e-6)


def test_rotated_tasks_step_the_angle(digits):
    s = Stream(DataConfig(stream="rotated", tasks=4, angle_step=30.0), digits, seed=0)
    assert [t.angle for t in s.tasks] == [0.0, 30.0, 60.0, 90.0]
    x, _ = s.batch(s.tasks[3], "test", torch.tensor([0]))
    torch.testing.assert_close(x, rotate(digits.x_test[:1], 90.0))


def test_limits_cut_the_training_and_test_sets(digits):
    s = Stream(DataConfig(tasks=2, train_limit=100, test_limit=50), digits, seed=0)
    assert len(s.split(s.tasks[1], "train").y) == 100 and len(s.split(s.tasks[1], "test").y) == 50


def test_memory_does_not_grow_with_tasks_beyond_the_permutations():
    """100 permuted tasks over a 28x28 dataset hold 100 x 784 indices, never a copy of the images."""
    n = 2000
    data = Dataset(
        "mnist",
        torch.rand(n, 1, 28, 28),
        torch.randint(0, 10, (n,)),
        torch.rand(500, 1, 28, 28),
        torch.randint(0, 10, (500,)),
        10,
        "synthetic",
        "",
    )
    s = Stream(DataConfig(stream="permuted", tasks=100), data, seed=0)
    for t in s.tasks:
        s.batch(t, "train", torch.arange(64))
        s.split(t, "test")
    dataset = {id(x.untyped_storage()) for x in (data.x_train, data.y_train, data.x_test, data.y_test)}
    held = {}
    for t in s.tasks:
        held[id(t.perm.untyped_storage())] = t.perm.untyped_storage().nbytes()
    for sp in s._splits.values():
        for x in (sp.idx, sp.y):
            if x is not None and id(x.untyped_storage()) not in dataset:
                held[id(x.untyped_storage())] = x.untyped_storage().nbytes()
    assert sum(held.values()) == 100 * 784 * 8  # the permutations, and nothing else


# --------------------------------------------------------------------------- scenarios


@pytest.mark.parametrize("k", [2, 3])
def test_domain_split_labels_are_the_position_within_the_task_and_share_one_small_head(digits, k):
    """Domain-incremental: "first or second class of the task", one head of k outputs for every task."""
    s = Stream(DataConfig(stream="split", tasks=3, classes_per_task=k, scenario="domain"), digits, seed=4)
    assert s.n_out == k
    order = torch.randperm(10, generator=torch.Generator().manual_seed(4)).tolist()  # the stream's class order
    for t, task in enumerate(s.tasks):
        groups = sorted(order[t * k : (t + 1) * k])
        assert task.classes == tuple(groups) and task.head_range is None
        for part, y_all in (("train", digits.y_train), ("test", digits.y_test)):
            _, y = s.batch(task, part)
            mask = np.isin(y_all.numpy(), groups)
            expected = np.searchsorted(groups, y_all.numpy()[mask])  # position in the sorted class list
            np.testing.assert_array_equal(y.numpy(), expected)
        _, yt = s.batch(task, "test")
        counts = np.bincount(yt.numpy(), minlength=k)
        assert s.chance(task) == pytest.approx(counts.max() / counts.sum())  # the task's own chance, about 1/k
        assert 1 / k - 0.1 < s.chance(task) < 1 / k + 0.1


def test_class_split_keeps_the_labels_and_a_head_of_every_class(digits):
    s = Stream(DataConfig(stream="split", tasks=5, scenario="class"), digits, seed=4)
    assert s.n_out == 10
    for task in s.tasks:
        _, y = s.batch(task, "test")
        assert set(y.tolist()) == set(task.classes) and task.head_range is None


def test_each_scenario_gives_different_numbers():
    """The same split digits run in the three scenarios: three heads, three accuracy matrices."""
    from blackout.api import run
    from tests.conftest import small

    results = {
        sc: run(small(stream="split", tasks=3, method="sgd", scenario=sc, iterations=60, sharpness=0))
        for sc in ("task", "domain", "class")
    }
    assert {sc: r.scenario for sc, r in results.items()} == {"task": "task", "domain": "domain", "class": "class"}
    assert [r.n_params for r in results.values()] == [32 * 64 + 32 + 33 * k for k in (6, 2, 10)]
    accs = [r.acc for r in results.values()]
    assert not np.allclose(accs[0], accs[1]) and not np.allclose(accs[1], accs[2]) and not np.allclose(accs[0], accs[2])
    # class-incremental SGD forgets the old classes outright; task-incremental keeps them above chance
    assert results["class"].acc[-1, 0] < 0.2 < results["task"].acc[-1, 0]


def test_natural_class_order_pairs_consecutive_labels_and_is_the_same_for_every_seed(digits):
    for seed in (0, 7):
        s = Stream(DataConfig(stream="split", tasks=5, class_order="natural", scenario="domain"), digits, seed=seed)
        assert [t.classes for t in s.tasks] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    seeded = {Stream(DataConfig(stream="split", tasks=5), digits, seed=seed).tasks[0].classes for seed in range(4)}
    assert len(seeded) > 1  # the default order is drawn from the seed
