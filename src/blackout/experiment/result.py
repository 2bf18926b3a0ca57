"""The value a run returns, and its JSON form: the one place results are converted to and from JSON.

JSON form (``Result.to_dict()``); task numbers are 1-based, accuracies are fractions in [0, 1]::

    {
      "run_id": "3f2a...",            # RunConfig.run_id
      "version": "0.2.0",              # blackout version that produced it
      "numerics": 1,                   # numerics version that computed it (numerics.py); absent = 0
      "seed": 0,
      "config": {"data": {...}, "model": {...}, "method": {"method": "ewc", "lam": 15.0, ...},
                 "train": {...}, "blackout": {...}},
      "n_params": 39760,
      "data": {"source": "...", "note": "...", "n_train": 8000, "n_test": 2000, "chance": [0.11, ...]},
      "acc": [[0.97, null, ...], ...], # R[i][j]: accuracy on task j+1 after training task i+1; null = not evaluated
      "diagnostics": [{"task": 1, "train_loss": .., ...}, ...],   # one per task run, fields: DIAGNOSTICS
      "metrics": {"avg_acc": .., "bwt": .., "fwt": .., "forgetting": .., "plasticity": [..]},
      "blackout": {"task": 5 | null, "cause": "collapsed" | "diverged" | null, "learned": true,
                   "retained": 3, "retained_tasks": [1, 2, 4], "stability_applies": true},
      "tasks_run": 5,                  # rows of acc
      "timings": {"total": .., "data": .., "train": .., "fisher": .., "eval": ..},
      "environment": {"python": .., "torch": .., "numpy": .., "blackout": .., "device": .., "threads": ..}
    }

JSON has no NaN: non-finite numbers (a diverged run's losses) are written as null.
"""

from __future__ import annotations

import functools
import math
import platform
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..numerics import numerics_of

#: how the note of a test-only split begins (``data.sources`` writes it; ``Result.split`` reads it without torch)
TEST_ONLY_NOTE = "only the"

DIAGNOSTICS = (
    "task",
    "train_loss",
    "penalty",
    "importance_mean",
    "importance_task_max",
    "importance_max",
    "stability",
    "unstable_weights",
    "unstable_drift",
    "unstable_active",
    "unstable_reach",
    "sharpness",
    "sharpness_task",
    "sharpness_penalty",
    "new_task_acc",
    "dead_units",
    "saturated_units",
    "effective_rank",
    "weight_norm",
    "memory_floats",
    "memory_samples",
    "subspace_use",
    "forecast",
    "forecast_lo",
    "forecast_hi",
    "seconds",
)
DIAGNOSTIC_HELP = {
    "task": "task number (1-based)",
    "train_loss": "mean task loss over the task's last steps (its last tenth, at most 50)",
    "penalty": "the method's penalty at the end of the task's training",
    "importance_mean": "mean of this task's importance (Fisher, MAS or SI) over all weights",
    "importance_task_max": "largest importance this task gave one weight",
    "importance_max": "largest accumulated importance after the task",
    "stability": "lr x lambda x largest accumulated importance while the task trained (unstable past 2)",
    "unstable_weights": "weights whose own penalty curvature lr x lambda x A_i is >= 2 while the task trained",
    "unstable_drift": "largest |theta_i - mu_i| among those weights at the task's end: the oscillation's size",
    "unstable_active": "those weights whose input is non-zero on the task's training images, at its start",
    "unstable_reach": "the largest |theta_i - mu_i| among them at the task's start: what the new inputs will meet",
    "sharpness": "lr x top Hessian eigenvalue of the penalised training loss at the task's end",
    "sharpness_task": "lr x top Hessian eigenvalue of the task loss alone",
    "sharpness_penalty": "lr x top eigenvalue of the penalty's curvature (lambda A)",
    "new_task_acc": "test accuracy on the task just after learning it",
    "dead_units": "fraction of hidden units inactive on every probe sample",
    "saturated_units": "fraction of tanh/sigmoid hidden units saturated on every probe sample",
    "effective_rank": "effective rank (entropy of singular values) of the last hidden layer's representation",
    "weight_norm": "Frobenius norm of each layer's weights",
    "memory_floats": "numbers the method keeps between tasks after this one (importances, anchors, bases, stored images)",
    "memory_samples": "training samples the method keeps (replay, A-GEM, joint); 0: no stored data",
    "subspace_use": "per layer, the fraction of its input space a projection method's basis spans",
    "forecast": "blackout task forecast after this task (tasks + 1: none within the budget; EWC with SGD only)",
    "forecast_lo": "the forecast's interval, first task",
    "forecast_hi": "the forecast's interval, last task (empty: past the budget)",
    "seconds": "wall time of the task: training, consolidation and evaluation",
}


@dataclass
class Verdict:
    """Blackout verdict of a run (``verdict.py`` defines it)."""

    task: int | None  # first blackout task, 1-based
    cause: str | None  # "diverged" or "collapsed"
    learned: bool  # some task was learned above its chance level + margin
    retained_tasks: list[int] = field(default_factory=list)
    #: whether lr x lambda x max importance governs the step (a gradient-applied quadratic penalty with
    #: plain SGD); the stability statistics leave the other runs out
    stability_applies: bool = False

    @property
    def retained(self) -> int:
        return len(self.retained_tasks)

    def text(self, tasks_run: int) -> str:
        if self.task is not None:
            return f"BLACKOUT at task {self.task} ({self.cause})"
        if not self.learned:
            return f"never learned a task above chance + margin in {tasks_run} tasks (not a blackout after learning)"
        return f"no blackout in {tasks_run} tasks"


@dataclass
class Result:
    run_id: str
    version: str
    seed: int
    config: dict[str, Any]
    n_params: int
    data: dict[str, Any]
    acc: np.ndarray  # (tasks_run, tasks) float, NaN where not evaluated
    diagnostics: list[dict[str, Any]]
    metrics: dict[str, Any]
    verdict: Verdict
    timings: dict[str, float] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    numerics: int = 0  # the numerics version that computed it (``numerics.py``); 0: before they existed

    # -- what a reader asks of a run ----------------------------------------------------------
    @property
    def tasks_run(self) -> int:
        return int(self.acc.shape[0])

    @property
    def method(self) -> str:
        return str(self.config["method"]["method"])

    @property
    def method_settings(self) -> dict[str, Any]:
        """The method's own settings (every one it has, defaults included)."""
        return {k: v for k, v in self.config["method"].items() if k != "method"}

    @property
    def hidden(self) -> tuple[int, ...]:
        return tuple(self.config["model"]["hidden"])

    @property
    def blackout_task(self) -> int | None:
        return self.verdict.task

    @property
    def scenario(self) -> str:
        """task, domain or class (van de Ven & Tolias 2019), also for a run stored before the setting."""
        from ..config import scenario_of

        return scenario_of(self.config["data"])

    @property
    def split(self) -> str:
        """Which images trained and scored the run: "standard split 60,000/10,000", "test-only split
        8,000/2,000" (MNIST's test images alone), with the limits a run put on them."""
        n_train, n_test = self.data.get("n_train"), self.data.get("n_test")
        if not isinstance(n_train, int) or not isinstance(n_test, int):
            return "split not recorded"
        note, d = str(self.data.get("note") or ""), self.config["data"]
        kind = (
            "test-only split"
            if note.startswith(TEST_ONLY_NOTE)
            else "digits split"
            if d.get("dataset") == "digits"
            else "standard split"
        )
        text = f"{kind} {n_train:,}/{n_test:,}"
        used = [
            f"first {lim:,} {part}"
            for lim, n, part in ((d.get("train_limit"), n_train, "train"), (d.get("test_limit"), n_test, "test"))
            if lim and lim < n
        ]
        return text + (f" ({', '.join(used)} used)" if used else "")

    @property
    def data_label(self) -> str:
        """ "mnist permuted · domain-incremental · standard split 60,000/10,000": what a number belongs to."""
        d = self.config["data"]
        return f"{d.get('dataset')} {d.get('stream')} · {self.scenario}-incremental · {self.split}"

    def diagnostic(self, name: str) -> list[float | None]:
        """One diagnostic over the tasks run, None where it was not measured."""
        return [finite_or_none(d.get(name)) for d in self.diagnostics]

    def diagnostics_frame(self):
        """The diagnostics as a pandas DataFrame, one row per task."""
        import pandas as pd

        return pd.DataFrame(self.diagnostics)

    def plot(self, kind: str = "matrix"):
        """A matplotlib Figure of this run: "matrix" (accuracy heatmap), "curves" or "stability"."""
        from ..study import plots

        draw = {
            "matrix": plots.figure_accuracy_matrix,
            "curves": plots.figure_task_curves,
            "stability": lambda r: plots.figure_stability([r]),
        }
        if kind not in draw:
            raise ValueError(f"kind: expected one of {', '.join(draw)}, got {kind!r}")
        return draw[kind](self)

    # -- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {
                "run_id": self.run_id,
                "version": self.version,
                "numerics": self.numerics,
                "seed": self.seed,
                "config": self.config,
                "n_params": self.n_params,
                "data": self.data,
                "acc": self.acc.tolist(),
                "diagnostics": self.diagnostics,
                "metrics": self.metrics,
                "blackout": {
                    "task": self.verdict.task,
                    "cause": self.verdict.cause,
                    "learned": self.verdict.learned,
                    "retained": self.verdict.retained,
                    "retained_tasks": self.verdict.retained_tasks,
                    "stability_applies": self.verdict.stability_applies,
                },
                "tasks_run": self.tasks_run,
                "timings": self.timings,
                "environment": self.environment,
            }
        )

    @classmethod
    def from_dict(cls, d: Any) -> Result:
        """The inverse of ``to_dict``, and the one check of a stored result: every field's type, range and
        shape (acc has ``tasks_run`` rows of ``config.data.tasks`` values in [0, 1] or null, one diagnostics
        row per task run, verdict tasks among those run). A malformed document raises ValueError naming the field."""
        _need(isinstance(d, dict), "result", "a JSON object", d)
        for key, kind in (("run_id", str), ("version", str), ("config", dict), ("acc", list), ("blackout", dict)):
            _need(isinstance(d.get(key), kind), key, f"a {kind.__name__}", d.get(key))
        _need(d["run_id"] != "", "run_id", "a non-empty str", d["run_id"])
        cfg = d["config"]
        for section in ("data", "model", "method", "train", "blackout"):
            _need(isinstance(cfg.get(section), dict), f"config.{section}", "an object", cfg.get(section))
        tasks = cfg["data"].get("tasks")
        _need(_int(tasks) and tasks >= 1, "config.data.tasks", "an integer >= 1", tasks)
        for section, key in (("data", "dataset"), ("data", "stream"), ("model", "arch"), ("method", "method")):
            v = cfg[section].get(key)
            _need(isinstance(v, str) and v != "", f"config.{section}.{key}", "a name", v)
        hidden = cfg["model"].get("hidden")
        _need(
            isinstance(hidden, list) and all(_int(h) and h >= 1 for h in hidden),
            "config.model.hidden",
            "a list of integers >= 1",
            hidden,
        )
        rows = d["acc"]
        _need(all(isinstance(r, list) and len(r) == tasks for r in rows), "acc", f"rows of {tasks} values", rows[:1])
        _need(len(rows) <= tasks, "acc", f"at most {tasks} rows", len(rows))
        bad = next((v for r in rows for v in r if not (v is None or (_num(v) and 0 <= v <= 1))), None)
        _need(bad is None, "acc", "numbers in [0, 1] or null", bad)
        n = len(rows)
        _need(
            d.get("tasks_run", n) == n and _int(d.get("tasks_run", n)),
            "tasks_run",
            f"{n} (the rows of acc)",
            d.get("tasks_run"),
        )
        acc = np.array([[np.nan if v is None else float(v) for v in r] for r in rows], dtype=float).reshape(n, tasks)
        diags = d.get("diagnostics", [])
        _need(
            isinstance(diags, list) and len(diags) == n and all(isinstance(x, dict) for x in diags),
            "diagnostics",
            f"a list of {n} objects (one per task run)",
            diags,
        )
        for i, row in enumerate(diags):
            for k, v in row.items():
                _need(
                    v is None or _num(v) or (isinstance(v, list) and all(x is None or _num(x) for x in v)),
                    f"diagnostics[{i}].{k}",
                    "a number, a list of numbers or null",
                    v,
                )
        metrics = d.get("metrics", {})
        _need(isinstance(metrics, dict), "metrics", "an object", metrics)
        for k, v in metrics.items():
            ok = v is None or _num(v) or (isinstance(v, list) and all(x is None or _num(x) for x in v))
            _need(ok, f"metrics.{k}", "a number or null" if not isinstance(v, list) else "a list of numbers", v)
        b = d["blackout"]
        task = b.get("task")
        _need(
            task is None or (_int(task) and 1 <= task <= n), "blackout.task", f"an integer from 1 to {n} or null", task
        )
        cause = b.get("cause")
        _need(
            cause in (("collapsed", "diverged") if task is not None else (None,)),
            "blackout.cause",
            "'collapsed' or 'diverged'" if task is not None else "null (no blackout task)",
            cause,
        )
        for key in ("learned", "stability_applies"):
            _need(isinstance(b.get(key, False), bool), f"blackout.{key}", "true or false", b.get(key))
        kept = b.get("retained_tasks", [])
        _need(
            isinstance(kept, list) and all(_int(k) and 1 <= k <= n for k in kept),
            "blackout.retained_tasks",
            f"task numbers from 1 to {n}",
            kept,
        )
        _need(
            b.get("retained", len(kept)) == len(kept),
            "blackout.retained",
            f"{len(kept)} (the retained tasks)",
            b.get("retained"),
        )
        seed = d.get("seed", cfg["train"].get("seed"))
        _need(_int(seed), "seed", "an integer", seed)
        n_params = d.get("n_params", 0)
        _need(_int(n_params) and n_params >= 0, "n_params", "an integer >= 0", n_params)
        for key, what in (("data", "an object"), ("timings", "an object of numbers"), ("environment", "an object")):
            v = d.get(key, {})
            _need(
                isinstance(v, dict) and (key != "timings" or all(x is None or _num(x) for x in v.values())),
                key,
                what,
                v,
            )
        return cls(
            run_id=d["run_id"],
            version=d["version"],
            seed=seed,
            config=cfg,
            n_params=n_params,
            data=d.get("data", {}),
            acc=acc,
            diagnostics=diags,
            metrics=metrics,
            verdict=Verdict(task, cause, b.get("learned", True), list(kept), b.get("stability_applies", False)),
            timings=d.get("timings", {}),
            environment=d.get("environment", {}),
            numerics=numerics_of(d),
        )


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v: Any) -> bool:
    """A finite number (JSON has no NaN; a stored one is damage)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _need(ok: bool, name: str, expected: str, got: Any) -> None:
    if not ok:
        shown = repr(got)
        raise ValueError(f"{name}: expected {expected}, got {shown[:80]}")


def finite_or_none(v: Any) -> float | None:
    """A finite float, or None for missing, null, NaN, infinite or non-numeric values."""
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def jsonable(x: Any) -> Any:
    """A JSON-ready copy: numpy values become Python ones, tuples lists, NaN and infinities null."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if hasattr(x, "tolist"):
        return jsonable(x.tolist())
    return x


def environment(**extra: Any) -> dict[str, Any]:
    """Versions (and where it ran) that can change a run's numbers: the one reader of package versions."""
    return {**_versions(), **extra}


def _cpu() -> str:
    """The processor's model: float32 kernels, so a run's last bits, differ between processors."""
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or platform.machine()


@functools.lru_cache(maxsize=1)
def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    env = {"python": platform.python_version(), "platform": platform.platform(), "cpu": _cpu()}
    for pkg in ("blackout", "torch", "numpy", "scipy", "matplotlib", "scikit-learn"):
        try:
            env[pkg] = version(pkg)
        except PackageNotFoundError:
            env[pkg] = "not installed"
    return env
