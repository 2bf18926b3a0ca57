"""Write tests/golden/runs.json: a few small fixed runs on the digits whose numbers guard NUMERICS_VERSION.

    python tests/golden/regenerate.py      # (with blackout importable, e.g. PYTHONPATH=src)

Run it only together with raising ``blackout.numerics.NUMERICS_VERSION``: the file records the
version it was written by, and ``tests/test_golden.py`` checks both.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

GOLDEN = Path(__file__).with_name("runs.json")

# Each a few seconds; together they pass through the fused step with a merged quadratic (ewc), the
# exact Fisher with sampled labels, a path-integral importance updated after each step (si), a
# proximal step (online-ewc-prox) and a replay memory on the autograd path.
CASES: list[dict[str, Any]] = [
    {"dataset": "digits", "tasks": 3, "hidden": [32], "iterations": 60, "method": "sgd", "seed": 0},
    {"dataset": "digits", "tasks": 3, "hidden": [32], "iterations": 60, "method": "ewc", "lam": 15, "seed": 1},
    {"dataset": "digits", "tasks": 3, "hidden": [16, 16], "iterations": 60, "method": "si", "lam": 1, "seed": 0},
    {
        "dataset": "digits",
        "tasks": 3,
        "hidden": [32],
        "iterations": 60,
        "method": "online-ewc-prox",
        "lam": 50,
        "gamma": 0.9,
        "seed": 2,
    },
    {"dataset": "digits", "tasks": 3, "hidden": [32], "iterations": 60, "method": "replay", "memory": 200, "seed": 0},
]


def measure(settings: dict[str, Any]) -> dict[str, Any]:
    """The run's accuracy matrix (None = not evaluated) and its per-task training loss."""
    import blackout

    torch.set_num_threads(1)
    r = blackout.run(**settings)
    return {
        "settings": settings,
        "acc": [[None if v != v else float(v) for v in row] for row in r.acc.tolist()],
        "train_loss": [float(d["train_loss"]) for d in r.diagnostics],
    }


def main() -> None:
    from blackout.numerics import NUMERICS_VERSION

    runs = [measure(c) for c in CASES]
    lines = ",\n  ".join(json.dumps(r) for r in runs)  # one run a line: a change shows as a readable diff
    GOLDEN.write_text(f'{{"numerics": {NUMERICS_VERSION}, "runs": [\n  {lines}\n]}}\n')
    print(f"{GOLDEN}: {len(runs)} runs at numerics version {NUMERICS_VERSION}")


if __name__ == "__main__":
    main()
