"""Named run configurations and study grids, as flat settings (the same names as the flags)."""

from __future__ import annotations

from typing import Any

from .errors import ConfigError

RUN_PRESETS: dict[str, dict[str, Any]] = {
    # The seed study: permuted MNIST, 784-50-10 ReLU, EWC lambda=15, plain SGD lr 0.1, batch 100,
    # 800 iterations per task, Fisher from 200 samples with labels sampled from the model.
    "seed-blog": {
        "dataset": "mnist",
        "stream": "permuted",
        "tasks": 20,
        "arch": "mlp",
        "hidden": (50,),
        "activation": "relu",
        "method": "ewc",
        "lam": 15.0,
        "fisher_samples": 200,
        "fisher_labels": "sampled",
        "optimizer": "sgd",
        "lr": 0.1,
        "batch_size": 100,
        "iterations": 800,
    },
    # Hsu et al. 2018, Table 2 (docs/published/hsu2018.toml): split MNIST in 5 tasks of 2 classes,
    # MLP 784-400-400 ReLU, Adam lr 0.001, batch 128, 4 epochs per task; fine-tuning (the Adam row).
    # Their loader pads the images to 32x32 and standardises them, their optimizer keeps its state
    # across tasks and their class scenario masks the outputs of classes not seen yet.
    # The scenario is chosen per run (--scenario task, domain or class).
    "hsu2018-split-mnist": {
        "dataset": "mnist",
        "stream": "split",
        "tasks": 5,
        "classes_per_task": 2,
        "class_order": "natural",
        "pad": 2,
        "normalize": True,
        "mask_unseen": True,
        "keep_optimizer": True,
        "arch": "mlp",
        "hidden": (400, 400),
        "activation": "relu",
        "method": "sgd",
        "optimizer": "adam",
        "lr": 0.001,
        "batch_size": 128,
        "epochs": 4.0,
        "sharpness": 0,
        "stop_on_blackout": False,
    },
    # Zenke, Poole & Ganguli 2017 (docs/published/zenke2017.toml): permuted MNIST, 10 tasks, MLP
    # 784-2000-2000 ReLU, Adam lr 0.001, batch 256, 20 epochs per task, SI at c = 0.1, xi = 0.1.
    "zenke2017-permuted-mnist": {
        "dataset": "mnist",
        "stream": "permuted",
        "tasks": 10,
        "arch": "mlp",
        "hidden": (2000, 2000),
        "activation": "relu",
        "method": "si",
        "lam": 0.1,
        "xi": 0.1,
        "optimizer": "adam",
        "lr": 0.001,
        "keep_optimizer": True,  # one Adam for the whole run, as the notebook's
        "batch_size": 256,
        "epochs": 20.0,
        "sharpness": 0,
        "stop_on_blackout": False,
    },
    # The embedded default at a size that runs in seconds: permuted 8x8 digits.
    "digits": {
        "dataset": "digits",
        "stream": "permuted",
        "tasks": 10,
        "hidden": (50,),
        "method": "ewc",
        "lam": 15.0,
        "lr": 0.1,
        "batch_size": 100,
        "iterations": 300,
    },
}


def run_preset(name: str) -> dict[str, Any]:
    if name not in RUN_PRESETS:
        raise ConfigError(f"preset: expected one of {', '.join(sorted(RUN_PRESETS))}, got {name!r}")
    return dict(RUN_PRESETS[name])


# Study grids: a base preset or settings, and the axes to sweep (flat names, lists of values).
STUDY_PRESETS: dict[str, dict[str, Any]] = {
    # The seed's capacity question: blackout task against hidden width, 3 seeds, up to 30 tasks.
    "seed-capacity": {
        "preset": "seed-blog",
        "base": {"tasks": 30},
        "grid": {"hidden": [[25], [50], [100], [200], [400]], "seed": [0, 1, 2]},
    },
}


def _per_method(grids: list[dict[str, Any]], common: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**g, **common} for g in grids]


STUDY_PRESETS["methods-blackout"] = {
    # Which method learns the most tasks before blackout? The seed-blog protocol (permuted MNIST,
    # SGD lr 0.1, 800 steps per task), widths 50 and 100, 30 tasks, 3 seeds, a small strength grid
    # per method. lwf is absent: it needs a multi-head split stream, not a permuted one.
    "preset": "seed-blog",
    "base": {"tasks": 30},
    # SI's and MAS's importances are far larger than the Fisher here: c >= 1 and lambda >= 0.5
    # pass the stability limit within a few tasks, so their grids reach down to stable values.
    "grid": "METHODS_STUDY",
}


METHODS_STUDY: list[dict[str, Any]] = [
    {"method": ["sgd"]},
    {"method": ["l2"], "lam": [0.01, 0.1]},
    {"method": ["ewc"], "lam": [5.0, 15.0]},
    {"method": ["online-ewc"], "lam": [5.0, 15.0], "gamma": [0.9]},
    {"method": ["ewc-l1"], "lam": [1.0, 5.0], "prox": [False, True]},
    {"method": ["ewc-prox"], "lam": [15.0, 50.0]},
    {"method": ["si"], "lam": [0.1, 1.0, 10.0]},
    {"method": ["mas"], "lam": [0.01, 0.1, 0.5, 2.0]},
    {"method": ["replay", "agem"], "memory": [200, 1000]},
]

STUDY_PRESETS["keep-learning"] = {
    # Which methods keep a network learning without storing data? Every setting of methods-blackout
    # plus the plasticity and bounded-curvature methods, and context-dependent gating (task identity
    # given: its own scenario), 5 seeds. The strengths: online-ewc-prox over the bound it puts on
    # the importance (gamma) and strengths up to 10x the gradient form's limit; ewc-capped at the
    # cap 1 (half the stability limit) and just below the limit; l2-init and shrink-perturb around
    # their papers' scales at this learning rate; cbp at the paper's rate and ten times it.
    "preset": "seed-blog",
    "base": {"tasks": 30},
    "grid": _per_method(
        METHODS_STUDY
        + [
            {"method": ["online-ewc-prox"], "lam": [15.0, 50.0, 150.0], "gamma": [0.8, 0.9]},
            {"method": ["ewc-capped"], "lam": [15.0, 50.0], "cap": [1.0, 1.9]},
            {"method": ["l2-init"], "lam": [0.001, 0.01]},
            {"method": ["shrink-perturb"], "shrink": [0.8, 0.95], "noise": [0.01]},
            {"method": ["cbp"], "replacement_rate": [1e-4, 1e-3]},
            {"method": ["sgd"], "gating": [0.8]},
            {"method": ["ewc"], "lam": [5.0], "gating": [0.8]},
            {"method": ["si"], "lam": [0.1], "gating": [0.8]},
        ],
        {"hidden": [[50], [100]], "seed": [0, 1, 2, 3, 4]},
    ),
}

STUDY_PRESETS["fashion-capacity"] = {
    # The capacity law on full-size data: seed-capacity on Fashion-MNIST's 60,000 training images.
    "preset": "seed-blog",
    "base": {"tasks": 30, "dataset": "fashion-mnist"},
    "grid": {"hidden": [[25], [50], [100], [200], [400]], "seed": list(range(10))},
}

STUDY_PRESETS["stability-grid"] = {
    # The stability number's predictions across step sizes and strengths, on the embedded digits.
    "preset": "digits",
    "base": {"tasks": 40, "iterations": 300, "hidden": [64]},
    "grid": {"lam": [5.0, 15.0, 50.0], "lr": [0.05, 0.1, 0.2], "seed": list(range(10))},
}


STUDY_PRESETS["methods-blackout"]["grid"] = _per_method(METHODS_STUDY, {"hidden": [[50], [100]], "seed": [0, 1, 2]})


# Published tables: each row the table reports, as the settings that reproduce it over the run
# preset. blackout's quadratic penalties are (lambda/2) sum A (theta - mu)^2 with A the Fisher (EWC,
# online EWC) or ones (L2), where Hsu et al.'s code writes reg_coef sum A (theta - mu)^2: there
# lambda = 2 reg_coef. SI and MAS keep A = 2 Omega, so there lambda = reg_coef. Their GEM (GEM_1100,
# margin reg_coef 0.5) trains on naive rehearsal's training set, memory included: gem with rehearse.
# Rows blackout cannot run (Adagrad, naive rehearsal-C, DGR, RtF, offline; replay with a head per
# task) are absent; with a head per task GEM runs without rehearsal. docs/findings.md lists them.
HSU_REG_COEF = {  # Hsu et al.'s scripts, per scenario: EWC, online EWC, SI, L2, MAS
    "task": {"EWC": 100.0, "Online EWC": 400.0, "SI": 300.0, "L2": 0.01, "MAS": 1.0},
    "domain": {"EWC": 100.0, "Online EWC": 700.0, "SI": 3000.0, "L2": 0.5, "MAS": 10000.0},
    "class": {"EWC": 600.0, "Online EWC": 100.0, "SI": 600.0, "L2": 100.0, "MAS": 1.0},
}


def _hsu_rows(scenario: str) -> dict[str, dict[str, Any]]:
    reg = HSU_REG_COEF[scenario]
    rows = {
        "Adam": {"method": "sgd", "optimizer": "adam", "lr": 0.001},
        "SGD": {"method": "sgd", "optimizer": "sgd", "lr": 0.01},
        "L2": {"method": "l2", "lam": 2 * reg["L2"]},
        "EWC": {"method": "ewc", "lam": 2 * reg["EWC"], "fisher_samples": 60000, "fisher_labels": "max"},
        "Online EWC": {
            "method": "online-ewc",
            "lam": 2 * reg["Online EWC"],
            "gamma": 1.0,
            "fisher_samples": 60000,
            "fisher_labels": "max",
        },
        "SI": {"method": "si", "lam": reg["SI"], "xi": 0.1},
        "MAS": {"method": "mas", "lam": reg["MAS"]},
    }
    gem = {"method": "gem", "memory": 1100, "memory_strength": 0.5, "optimizer": "sgd", "lr": 0.01}
    if scenario == "task":
        rows["LwF"] = {"method": "lwf"}
        rows["GEM (without rehearsal)"] = {**gem, "rehearse": False}
    else:  # a batch mixing memory and current samples needs one shared head
        rows["Naive rehearsal"] = {"method": "replay", "memory": 1100}
        rows["GEM"] = {**gem, "rehearse": True}
    return {name: {"scenario": scenario, **row} for name, row in rows.items()}


PUBLISHED_ROWS: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
    "hsu2018-split-mnist": {
        (sc, name): row for sc in ("task", "domain", "class") for name, row in _hsu_rows(sc).items()
    },
    "zenke2017-permuted-mnist": {
        ("domain", "Fine-tuning (Adam, c = 0)"): {"method": "sgd"},
        ("domain", "SI"): {"method": "si", "lam": 0.1, "xi": 0.1},
    },
}
PUBLISHED_SEEDS = {"hsu2018-split-mnist": list(range(10)), "zenke2017-permuted-mnist": list(range(5))}
for _name, _rows in PUBLISHED_ROWS.items():
    STUDY_PRESETS[_name] = {
        "preset": _name,
        "grid": [{**{k: [v] for k, v in row.items()}, "seed": PUBLISHED_SEEDS[_name]} for row in _rows.values()],
    }


def study_preset(name: str) -> dict[str, Any]:
    if name not in STUDY_PRESETS:
        raise ConfigError(f"preset: expected one of {', '.join(sorted(STUDY_PRESETS))}, got {name!r}")
    p = STUDY_PRESETS[name]
    return {"preset": p.get("preset"), "base": dict(p.get("base", {})), "grid": p["grid"]}


# `blackout demo`: a capacity study small enough for a laptop (well under a minute on 2 cores).
DEMO = {
    "about": (
        "demo: permuted 8x8 digits (scikit-learn, no download), MLPs of width 16-256, SGD vs EWC "
        "(lambda 15, lr 0.1), up to 30 tasks of 300 steps, 3 seeds: 30 runs"
    ),
}
STUDY_PRESETS["demo"] = {
    "base": {
        "dataset": "digits",
        "stream": "permuted",
        "tasks": 30,
        "iterations": 300,
        "batch_size": 100,
        "lr": 0.1,
        "lam": 15.0,
        "fisher_samples": 200,
    },
    "grid": {"hidden": [[16], [32], [64], [128], [256]], "method": ["sgd", "ewc"], "seed": [0, 1, 2]},
}
