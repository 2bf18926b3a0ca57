"""Context-dependent gating: every sample goes through its own task's gate, in training, in a method's
memory, in distillation and in consolidation, checked against a hand-masked forward pass."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import blackout.experiment.methods.lwf as lwf_module
import blackout.experiment.methods.replay as replay_module
import blackout.experiment.train as train_module
from blackout.experiment import gating
from blackout.experiment.gating import Gates, task_masks
from blackout.experiment.methods import registry
from blackout.experiment.models import StackedMLP
from blackout.experiment.train import Experiment, run
from tests.conftest import small


def masked_logits(weights, biases, x, masks):
    """Logits (B, C) of one member's MLP (weights [(out, in)], biases [(out,)]) with sample n's hidden
    units of layer l multiplied by masks[l][n]: plain matmuls, the reference every gated path must match."""
    h = x.reshape(len(x), -1)
    for i, (w, b) in enumerate(zip(weights, biases)):
        h = h @ w.T + b
        if i < len(weights) - 1:
            h = torch.relu(h) * masks[i]
    return h


def sample_masks(cfg, tasks) -> list[torch.Tensor]:
    """Per hidden layer, (len(tasks), width): each sample's row is its own task's mask."""
    table = task_masks(list(cfg.model.hidden), cfg.data.tasks, cfg.model.gating, cfg.seed)
    return [torch.stack([table[int(t)][l] for t in tasks]) for l in range(len(cfg.model.hidden))]


def member_weights(net, m=0):
    return [w[m].detach().clone() for w in net.weights], [b[m].detach().clone() for b in net.biases]


def spy(monkeypatch, owner, name, before=None, after=None):
    """Wrap ``owner.name``: ``before(args)`` runs ahead of the original, ``after(args, result)`` behind it."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        if before:
            before(args)
        out = original(*args, **kwargs)
        if after:
            after(args, out)
        return out

    monkeypatch.setattr(owner, name, wrapper)


def replay_second_task(monkeypatch, seeds=(0,), **kw):
    """Train task 1 of a gated replay group, then task 2 with spies: the group, the configs, each step's
    batch and weights per member [(x, y, weights)], the losses the step returned (M, k) and each member's
    memory draws, in order."""
    configs = [small(method="replay", memory=40, gating=0.5, tasks=2, hidden=(24,), seed=s, **kw) for s in seeds]
    ex = Experiment(configs)
    ex.train_task(0)
    ex.method.consolidate(ex.net, ex.streams.task(0), ex.streams)
    drawn, steps, losses = [], [], []
    spy(monkeypatch, replay_module.Memory, "draw", after=lambda args, out: drawn.append(out))

    def step(args):
        net, _, _, x, y, _ = args
        steps.append([(x[m].clone(), y[m].clone(), member_weights(net, m)) for m in range(len(seeds))])

    spy(monkeypatch, train_module, "update", step, lambda args, out: losses.append(out))
    ex.train_task(1)
    return ex, configs, steps, losses, [drawn[i :: len(seeds)] for i in range(len(seeds))]


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])  # the fused step and the autograd step
def test_replay_trains_each_memory_sample_under_its_own_task_s_gate(monkeypatch, optimizer):
    ex, configs, steps, losses, drawn = replay_second_task(
        monkeypatch, seeds=(0, 1), iterations=3, batch_size=16, optimizer=optimizer
    )
    assert len(steps) == len(losses) == 3
    B = 16
    for m, cfg in enumerate(configs):  # each member through its own masks
        assert len(drawn[m]) == 3
        for step, (tasks, rows), loss in zip(steps, drawn[m], losses):
            x, y, (w, b) = step[m]
            assert x.shape[0] == B + len(tasks) and set(tasks.tolist()) == {0}
            torch.testing.assert_close(x[B:], ex.streams.members[m].rows_of_tasks(tasks, rows)[0])
            order = torch.cat([torch.ones(B, dtype=torch.long), tasks])  # the training batch, then the memory
            want = F.cross_entropy(masked_logits(w, b, x, sample_masks(cfg, order)), y)
            assert loss[m].mean().item() == pytest.approx(want.item(), rel=1e-5)


def test_replay_s_fused_step_moves_the_weights_as_the_hand_masked_gradient_does(monkeypatch):
    ex, (cfg,), steps, _, drawn = replay_second_task(monkeypatch, iterations=1, batch_size=16, lr=0.1)
    (x, y, (w, b)), (tasks, _) = steps[0][0], drawn[0][0]
    params = [p.requires_grad_() for p in w + b]
    order = torch.cat([torch.ones(16, dtype=torch.long), tasks])
    loss = F.cross_entropy(masked_logits(params[: len(w)], params[len(w) :], x, sample_masks(cfg, order)), y)
    grads = torch.autograd.grad(loss, params)
    after = member_weights(ex.net)
    for p, g, now in zip(params, grads, after[0] + after[1]):
        torch.testing.assert_close(now, (p - 0.1 * g).detach(), rtol=1e-5, atol=1e-6)


def test_agem_s_reference_gradient_is_taken_under_each_memory_sample_s_own_gate(monkeypatch):
    cfg = small(method="agem", memory=40, gating=0.5, tasks=2, hidden=(24,), iterations=4, batch_size=16)
    ex = Experiment([cfg])
    ex.train_task(0)
    ex.method.consolidate(ex.net, ex.streams.task(0), ex.streams)
    drawn, refs = [], []
    spy(monkeypatch, replay_module.Memory, "draw", after=lambda args, out: drawn.append(out))

    def project(args):
        _, ref = args
        refs.append(([r[0].clone() for r in ref], member_weights(ex.net)))

    spy(monkeypatch, replay_module, "project_", project)
    ex.train_task(1)
    assert len(refs) == len(drawn) == 4
    for (ref, (w, b)), (tasks, rows) in zip(refs, drawn):
        xm, ym = ex.streams.members[0].rows_of_tasks(tasks, rows)
        params = [p.requires_grad_() for p in w + b]
        loss = F.cross_entropy(masked_logits(params[: len(w)], params[len(w) :], xm, sample_masks(cfg, tasks)), ym)
        want = torch.autograd.grad(loss, params)
        for got, g in zip(ref, [want[0], want[2], want[1], want[3]]):  # params() order: W1, b1, W2, b2
            torch.testing.assert_close(got, g, rtol=1e-4, atol=1e-6)


def test_gem_s_reference_gradients_are_taken_under_each_past_task_s_own_gate(monkeypatch):
    pytest.importorskip("quadprog")
    import blackout.experiment.methods.gem as gem_module

    cfg = small(method="gem", memory=40, gating=0.5, tasks=3, hidden=(24,), iterations=3, batch_size=16)
    ex = Experiment([cfg])
    for t in range(2):
        ex.train_task(t)
        ex.method.consolidate(ex.net, ex.streams.task(t), ex.streams)
    seen = []

    def record(args):
        _, refs, _ = args
        seen.append(([[r[0].clone() for r in ref] for ref in refs], member_weights(ex.net)))

    spy(monkeypatch, gem_module, "project_qp_", record)
    ex.train_task(2)
    assert seen, "no step checked its memory"
    held = ex.method.references()
    assert [past.index for past, _, _ in held] == [0, 1]
    for refs, (w, b) in seen:
        for ref, (past, x, y) in zip(refs, held):
            params = [p.requires_grad_() for p in w + b]
            masks = sample_masks(cfg, [past.index] * x.shape[1])
            loss = F.cross_entropy(masked_logits(params[: len(w)], params[len(w) :], x[0], masks), y[0])
            want = torch.autograd.grad(loss, params)
            for got, g in zip(ref, [want[0], want[2], want[1], want[3]]):  # params() order: W1, b1, W2, b2
                torch.testing.assert_close(got, g, rtol=1e-4, atol=1e-6)


def test_lwf_distils_each_old_head_under_its_own_task_s_gate(monkeypatch):
    cfg = small(method="lwf", stream="split", scenario="task", gating=0.5, tasks=3, hidden=(24,), iterations=2)
    ex = Experiment([cfg])
    calls, steps = [], []  # distillation's (old, new) head outputs; each step's input, weights, first call
    spy(monkeypatch, lwf_module, "distillation", after=lambda args, out: calls.append((args[0][0], args[1][0])))

    def loss(args):
        method, net, x = args[:3]
        if method.old is not None:
            steps.append((x[0], member_weights(net), member_weights(method.old), len(calls)))

    spy(monkeypatch, lwf_module.LwF, "loss", loss)
    for t in range(3):
        ex.train_task(t)
        ex.method.consolidate(ex.net, ex.streams.task(t), ex.streams)
    ends = [s[3] for s in steps[1:]] + [len(calls)]
    assert [end - s[3] for s, end in zip(steps, ends)] == [1, 1, 2, 2]  # one call per old head
    for (x, (w, b), old, first), end in zip(steps, ends):
        for h, (old_out, new_out) in enumerate(calls[first:end]):
            lo, hi = ex.method.old_heads[h]
            masks = sample_masks(cfg, [h] * len(x))
            torch.testing.assert_close(old_out, masked_logits(*old, x, masks)[:, lo:hi], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(new_out.detach(), masked_logits(w, b, x, masks)[:, lo:hi], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method,kw", [("ewc", {"lam": 15.0}), ("mas", {"lam": 1.0}), ("gpm", {})])
def test_consolidation_and_diagnostics_do_not_depend_on_eval_all(method, kw):
    """Evaluating the future tasks too must not move what the run consolidates or measures."""
    runs = [
        run(small(method=method, gating=0.5, tasks=3, hidden=(24,), iterations=40, eval_all=e, **kw))
        for e in (False, True)
    ]
    for t in range(3):
        np.testing.assert_array_equal(runs[0].acc[t, : t + 1], runs[1].acc[t, : t + 1])
        a, b = ({k: v for k, v in r.diagnostics[t].items() if k != "seconds"} for r in runs)
        assert a == b, f"task {t + 1}: {[(k, a[k], b[k]) for k in a if a[k] != b[k]]}"


@pytest.mark.parametrize("eval_all", [False, True])
def test_a_method_consolidates_under_the_gate_of_the_task_just_trained(monkeypatch, eval_all):
    cfg = small(method="ewc", gating=0.5, tasks=3, hidden=(24,), iterations=10, eval_all=eval_all)
    checked = []

    def consolidate(args):
        _, net, task, data = args
        x = data.batch(task.index, [torch.arange(8)])[0]
        w, b = member_weights(net)
        want = masked_logits(w, b, x[0], sample_masks(cfg, [task.index] * 8))
        torch.testing.assert_close(net(x)[0].detach(), want, rtol=1e-5, atol=1e-6)
        checked.append(task.index)

    spy(monkeypatch, registry()["ewc"], "consolidate", consolidate)
    run(cfg)
    assert checked == [0, 1, 2]


def test_a_member_leaving_the_stack_inside_a_gated_block_gets_its_own_gate_back():
    net = StackedMLP((4, 6, 3), "relu", seeds=[0, 1])
    net.gating = Gates([6], tasks=3, gating=0.5, seeds=[0, 1])
    masks = [task_masks([6], 3, 0.5, s) for s in (0, 1)]
    with gating.under(net, 2):
        with gating.under(net, torch.tensor([[0, 1], [1, 0]])):  # per sample, per member
            assert torch.equal(net.gates[0][1, 1], masks[1][0][0])
            net.select([1])
            assert torch.equal(net.gates[0][0], torch.stack([masks[1][1][0], masks[1][0][0]]))
        assert torch.equal(net.gates[0], masks[1][2][0].view(1, 1, 6))  # seed 1's mask of task 3, recomputed
    assert net.gates is None
    plain = StackedMLP((4, 6, 3), "relu", seeds=[0])
    with gating.under(plain, 1):
        assert plain.gates is None  # an ungated network stays ungated
