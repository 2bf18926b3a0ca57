"""What happens while the stability number sits just above 2, and what ends it.

Trains one run of the seed protocol again, exactly as ``blackout run`` does, and records what the
run's diagnostics only summarise: at every step, each unstable weight's distance from its anchor
(a weight is unstable when lr x lambda x A_i >= 2, its own penalty curvature alone making plain SGD
overshoot), and at the start of every task whether its input is active in that task (for a first-
layer weight: the share of the task's training images whose pixel at that input is non-zero).

    python docs/analysis/plateau.py --hidden 200 --seed 0 --data-dir ../shared/data/mnist
        [--out docs/plateau.json] [--figure docs/plateau.png]

Writes a JSON trace and a figure: the stability number per task, and per step the distance of each
unstable weight from its anchor, drawn solid where its input is active in the task and faint where
it is blank.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from blackout.config import RunConfig
from blackout.experiment.forecast import LIMIT
from blackout.experiment.step import make_optimizer, update
from blackout.experiment.train import Experiment, batches, steps_per_task, threads
from blackout.presets import run_preset


def unstable_weights(ex: Experiment, t: int) -> list[dict]:
    """Every unstable weight of member 0 at the start of task t, with how active its input is."""
    method, net = ex.method, ex.net
    diag = method.hessian_diagonal()
    if diag is None:
        return []
    lr = float(method.lr[0])
    x, _ = ex.streams.sample(t, 4096, [torch.Generator().manual_seed(0)])
    _, inputs = net.forward_cached(x)
    out = []
    for k, d in enumerate(diag):
        hot = (d[0] * lr >= LIMIT).nonzero().tolist()
        layer, is_bias = k // 2, k % 2 == 1
        for idx in hot:
            unit = idx[0]
            source = None if is_bias else idx[1]
            active = 1.0 if is_bias else float((inputs[layer][0, :, source] != 0).float().mean())
            out.append({"param": k, "index": idx, "layer": layer + 1, "unit": unit, "input": source,
                        "curvature": float(d[0][tuple(idx)]) * lr, "active": active})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tasks", type=int, default=30)
    p.add_argument("--data-dir", default="../shared/data/mnist")
    p.add_argument("--out", default="docs/plateau.json")
    p.add_argument("--figure", default="docs/plateau.png")
    a = p.parse_args()
    cfg = RunConfig.from_flat({**run_preset("seed-blog"), "tasks": a.tasks, "hidden": (a.hidden,), "seed": a.seed},
                              strict=False)
    trace = {"config": cfg.to_dict(), "run_id": cfg.run_id, "tasks": []}
    start = time.perf_counter()
    with threads(cfg.train.threads):
        ex = Experiment([cfg], a.data_dir)
        for t in range(ex.tasks):
            in_force = ex.method.stability()
            hot = unstable_weights(ex, t)
            tc = cfg.train
            n = ex.streams.n_rows(t)
            steps = steps_per_task(tc, n)
            task = ex.streams.task(t)
            draws = batches(n, tc.batch_size, steps, ex.batch_gens[0])
            from blackout.experiment import stability

            ex.active_at_start, ex.reach_at_start = stability.unstable_active(
                ex.method, ex.net, ex._probe(t, "train", 4096))
            ex.streams.begin(t, steps * tc.batch_size)
            ex.method.begin_task(ex.net, task, ex.streams)
            opt = make_optimizer(tc.optimizer, ex.net.params(), ex.method.lr)
            params, anchor = ex.net.params(), getattr(ex.method, "mu", None)
            path = {i: [] for i in range(len(hot))}
            losses = []
            tic = time.perf_counter()
            for _ in range(steps):
                x, y = ex.streams.batch(t, [next(draws)])
                losses.append(update(ex.net, ex.method, opt, x, y, task))
                for i, h in enumerate(hot):
                    path[i].append(float((params[h["param"]][0][tuple(h["index"])] - anchor[h["param"]][0][tuple(h["index"])]).detach().abs()))
            ex.streams.end()
            tail = [float(torch.stack([s[0].mean() for s in losses[-50:]]).mean())]
            finite = ex.finite(torch.isfinite(torch.cat(losses, 1)).all(1))
            accs = ex.evaluate(t)
            ex.record(t, tail, finite, accs, in_force, tic, time.perf_counter())
            d = ex.members[0].diags[-1]
            trace["tasks"].append({"task": t + 1, "stability": in_force[0], "loss": tail[0], "finite": finite[0],
                                   "new_task_acc": d["new_task_acc"], "unstable": hot,
                                   "distance": {i: v[:: max(1, steps // 200)] for i, v in path.items()}})
            print(f"task {t + 1:>2}  s {in_force[0]:.3f}  unstable {len(hot):>2} (active inputs "
                  f"{sum(h['active'] > 0 for h in hot)})  loss {tail[0]:.3f}  new-task acc {d['new_task_acc']:.3f}", flush=True)
            ex.drop_stopped()
            if not ex.active:
                break
    result = ex.results()[0]
    trace["verdict"] = {"task": result.verdict.task, "cause": result.verdict.cause}
    trace["seconds"] = time.perf_counter() - start
    Path(a.out).write_text(json.dumps(trace, indent=1))
    figure(trace, Path(a.figure))
    print(f"blackout: {trace['verdict']} · trace {a.out} · figure {a.figure}")


def figure(trace: dict, out: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tasks = trace["tasks"]
    fig = Figure(figsize=(9, 6.5), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, height_ratios=[1, 2])
    top.plot([t["task"] for t in tasks], [t["stability"] for t in tasks], "o-", color="black", ms=4)
    top.axhline(2, ls="--", color="grey")
    top.set_ylabel("stability number s")
    top.set_xlabel("task")
    bt = trace["verdict"]["task"]
    if bt:
        top.axvline(bt, color="crimson", lw=1)
        top.text(bt, 0.1, f" blackout at task {bt}", color="crimson", fontsize=8)
    first = next((t["task"] for t in tasks if t["unstable"]), None)
    shown = [t for t in tasks if first and t["task"] >= first]
    for offset, t in enumerate(shown):
        steps = max((len(v) for v in t["distance"].values()), default=1)
        for i, h in enumerate(t["unstable"]):
            v = np.maximum(np.array(t["distance"][str(i)] if str(i) in t["distance"] else t["distance"][i]), 1e-12)
            xs = offset + np.arange(len(v)) / steps
            live = h["active"] > 0
            bottom.plot(xs, v, color="crimson" if live else "steelblue", alpha=1.0 if live else 0.5, lw=1.2)
            bottom.annotate(f"input on for {100 * h['active']:.3g}% of images", (offset + 0.02, v[0] * 30 ** i),
                            fontsize=7, color="crimson" if live else "steelblue")
        bottom.axvline(offset, color="grey", lw=0.5)
    bottom.set_xticks([k + 0.5 for k in range(len(shown))], [f"task {t['task']}" for t in shown])
    bottom.set_yscale("log")
    bottom.set_ylabel("|theta_i - mu_i| of each unstable weight")
    bottom.set_title("red: the weight's input unit fires on some of the task's images at its start; "
                     "blue: it is silent", fontsize=9)
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
