"""blackout on one GPU: the GPU tests, then seed-capacity and methods-blackout timed as whole sweeps.

    PYTHONPATH=src python benchmarks/gpu.py --data-dir DIR          # on a CUDA machine, at most 8 minutes
    PYTHONPATH=src python benchmarks/gpu.py --data-dir DIR --device cpu --quick   # the script's own check

Runs from the source tree with whatever PyTorch the machine has, and downloads nothing: DIR must
hold the MNIST IDX files (t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz, and the
train-* files if present), carried to the machine. Each sweep is one ``blackout sweep`` process
into a fresh folder (its stacked groups on the one device); each line prints the time, its target
and its ratio to the CPU figure recorded in benchmarks/README.md (2 cores).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The CPU figures of benchmarks/README.md (2 cores, --jobs 2): wall seconds of each whole sweep.
CPU_SECONDS = {"seed-capacity": 280.6, "methods-blackout": 37.47 * 60}
TARGETS = {"seed-capacity": 30.0, "methods-blackout": 180.0}
BUDGET = 8 * 60  # seconds, the whole script
QUICK = ["--tasks", "2", "--iterations", "100"]
NEEDED = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def missing_data(data_dir: Path) -> list[str]:
    return [f for f in NEEDED if not any((data_dir / (f + ext)).exists() for ext in (".gz", ""))]


def env() -> dict:
    """Children import this source tree's blackout, whatever is installed."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), *filter(None, [e.get("PYTHONPATH")])])
    return e


def left(start: float) -> float:
    return BUDGET - (time.perf_counter() - start)


def run_tests(device: str, start: float) -> bool:
    """tests/test_gpu.py under pytest; on the CPU they skip, which this reports rather than hides."""
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "tests" / "test_gpu.py"), "-q", "-rs", "-p", "no:cacheprovider"]
    t = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env(), cwd=ROOT, timeout=max(30.0, left(start) - 60))
    except subprocess.TimeoutExpired:
        print(f"gpu tests                      TIMEOUT after {time.perf_counter() - t:.0f} s", flush=True)
        return False
    summary = (p.stdout.strip().splitlines() or ["(no output)"])[-1]
    ok = p.returncode == 0 or (device == "cpu" and p.returncode == 5)
    print(f"gpu tests                      {'PASS' if ok and device != 'cpu' else 'SKIP' if ok else 'FAIL'}  "
          f"{summary} ({time.perf_counter() - t:.0f} s)", flush=True)
    if not ok:
        print(p.stdout[-4000:], p.stderr[-2000:], sep="\n", flush=True)
    return ok


def time_sweep(name: str, args: argparse.Namespace, tmp: Path, start: float) -> bool:
    cmd = [sys.executable, "-m", "blackout", "sweep", str(tmp / name), "--preset", name, "--data-dir", str(args.data_dir),
           "--device", args.device, "--jobs", str(args.jobs), *(QUICK if args.quick else [])]
    budget = left(start)
    if budget < 10:
        print(f"{name:<30} SKIPPED  no time left of the {BUDGET // 60}-minute budget", flush=True)
        return False
    t = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env(), cwd=tmp, timeout=budget)
    except subprocess.TimeoutExpired:
        print(f"{name:<30} TIMEOUT  over {budget:.0f} s (the script's budget); target < {TARGETS[name]:g} s", flush=True)
        return False
    wall = time.perf_counter() - t
    if p.returncode not in (0, 1):  # 1: some runs failed, still timed
        print(f"{name:<30} ERROR    exit {p.returncode}\n{p.stderr[-3000:]}", flush=True)
        return False
    tail = next((ln for ln in reversed(p.stdout.strip().splitlines()) if not ln.startswith("next:")), "")
    ok = wall < TARGETS[name]
    size = " (quick: " + " ".join(QUICK) + ", not comparable)" if args.quick else ""
    print(f"{name:<30} {wall:8.1f} s  target < {TARGETS[name]:g} s {'PASS' if ok else 'SHORT'}  "
          f"{CPU_SECONDS[name] / wall:.1f}x the CPU's {CPU_SECONDS[name]:.0f} s (2 cores, benchmarks/README.md){size}; "
          f"{tail}", flush=True)
    return True


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, required=True, help="folder holding the MNIST IDX files (carried, never downloaded)")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"), help="cuda (default); cpu checks the script itself")
    p.add_argument("--jobs", type=int, default=2, help="sweep worker processes sharing the device (default 2)")
    p.add_argument("--quick", action="store_true", help=f"sweeps of {' '.join(QUICK)} only: checks that everything runs")
    p.add_argument("--skip-tests", action="store_true", help="only the timed sweeps")
    p.add_argument("--sweeps", nargs="+", choices=tuple(TARGETS), default=list(TARGETS), help="which sweeps to time")
    args = p.parse_args()
    start = time.perf_counter()
    if missing_data(args.data_dir):
        print(f"gpu.py: error: --data-dir {args.data_dir}: missing {', '.join(missing_data(args.data_dir))} (.gz or "
              "plain); carry the MNIST IDX files to this machine, nothing is downloaded", file=sys.stderr)
        return 2
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu.py: error: no CUDA device here (torch.cuda.is_available() is False); --device cpu checks the script",
              file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    print(f"gpu.py: {name} · torch {torch.__version__} · CUDA {torch.version.cuda} · {os.cpu_count()} cores · "
          f"--jobs {args.jobs}{' · quick' if args.quick else ''} · budget {BUDGET // 60} min", flush=True)
    ok = True
    if not args.skip_tests:
        ok &= run_tests(args.device, start)
    with tempfile.TemporaryDirectory(prefix="blackout-gpu-") as tmp:
        for study in args.sweeps:
            ok &= time_sweep(study, args, Path(tmp), start)
    print(f"gpu.py: {time.perf_counter() - start:.0f} s in all", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
