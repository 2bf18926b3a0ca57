"""Same run id, same numbers: a run's results do not depend on the group, the thread count or the process."""

import numpy as np
import pytest
import torch

from blackout.experiment.result import finite_or_none
from blackout.experiment.train import alone_reason, group_key, run, run_group
from blackout.study.pools import execute, units
from tests.conftest import small


def _same(a, b):
    assert a.run_id == b.run_id
    assert np.array_equal(a.acc, b.acc, equal_nan=True), (a.acc, b.acc)
    keys = ("train_loss", "penalty", "stability", "importance_max", "new_task_acc", "dead_units", "effective_rank")
    for da, db in zip(a.diagnostics, b.diagnostics):
        for k in keys:
            va, vb = finite_or_none(da.get(k)), finite_or_none(db.get(k))  # NaN and JSON's null alike
            assert va == vb, (k, da["task"], va, vb)
    assert (a.verdict.task, a.verdict.cause) == (b.verdict.task, b.verdict.cause)


# a run at the edge of stability (s passes 2 during the run and it diverges), one far from it, and
# members that differ in seed, lambda and learning rate
EDGE = dict(tasks=8, hidden=(24,), iterations=120, lr=0.2, lam=40.0)


@pytest.fixture(scope="module")
def configs():
    return [
        small(**EDGE, seed=0),
        small(**EDGE, seed=1),
        small(**{**EDGE, "lam": 5.0}, seed=2),
        small(**{**EDGE, "lr": 0.1}, seed=3),
        small(**EDGE, seed=4),
    ]


def test_a_run_gives_the_same_numbers_alone_and_in_groups_of_three_and_five(configs):
    alone = [run(c) for c in configs]
    assert alone[0].verdict.cause == "diverged" and max(d["stability"] for d in alone[0].diagnostics) >= 2
    assert any(r.verdict.task is None or r.verdict.task > 5 for r in alone)  # some member outlives the others
    for group in (configs[:3], configs):
        for single, member in zip(alone, run_group(group)):
            _same(single, member)


def test_the_caller_s_thread_count_and_the_worker_process_do_not_change_a_run(configs):
    """A run trains with the threads its config names: a matrix product split over two threads
    can round differently (seen here for a 10 x 64 x 24 product), so the count is part of its identity."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run(configs[0])
        torch.set_num_threads(2)
        two = run(configs[0])
        assert torch.get_num_threads() == 2  # the caller's setting is restored
    finally:
        torch.set_num_threads(before)
    _same(one, two)
    from blackout.experiment.result import Result

    swept = [Result.from_dict(out["result"]) for out in execute([c.to_dict() for c in configs[:2]], None)]
    _same(one, swept[0])
    assert small(threads=2).run_id != configs[0].run_id


def test_only_compatible_runs_share_a_model():
    base = small()
    assert group_key(base) == group_key(small(seed=3)) == group_key(small(lam=5.0)) == group_key(small(lr=0.05))
    assert group_key(base) != group_key(small(hidden=(16,)))
    assert group_key(small(method="online-ewc", gamma=0.9)) == group_key(small(method="online-ewc", gamma=0.5))
    assert group_key(small(method="ewc", fisher_samples=10)) != group_key(base)  # a sample count shapes the work
    assert alone_reason(small(arch="cnn", channels=(4,))) == "arch cnn trains alone"
    assert alone_reason(
        small(method="lwf", stream="split", multi_head=True)
    ) == "method lwf does not batch" or alone_reason(small(method="lwf", stream="split", multi_head=True)).startswith(
        "split"
    )
    assert alone_reason(small(stream="split")).startswith("split streams")
    with pytest.raises(ValueError, match="one common, non-None group_key"):
        run_group([small(), small(hidden=(16,))])


def test_units_group_by_key_keep_every_job_busy_and_put_the_largest_first():
    configs = (
        [small(seed=s) for s in range(5)]
        + [small(seed=s, hidden=(200,)) for s in range(2)]
        + [small(arch="cnn", channels=(4,))]
    )
    plan, alone = units(configs, jobs=2)
    sizes = [len(u) for u in plan]
    # at least two units per job: the costliest group (2 wide runs) halved; the 5 narrow runs stay one stack
    assert sorted(sizes) == [1, 1, 1, 5]
    assert plan[0][0].model.hidden == (200,)  # the most work first
    assert len(units([small(seed=s) for s in range(20)], jobs=2)[0]) == 4  # 8 + 8 + 4 members, the first halved
    assert alone == {"arch cnn trains alone": 1}
    flat, why = units(configs, jobs=2, batched=False)
    assert [len(u) for u in flat] == [1] * 8 and why == {"--no-batch": 8}
