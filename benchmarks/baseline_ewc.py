"""Protocol P1 written the way published EWC code does it, without a DataLoader: the baseline.

Permuted Fashion-MNIST (60k/10k), 5 tasks, MLP 784-100-10, EWC lambda=6 in (lambda/2) sum F (theta-theta*)^2,
sampled-label Fisher from 1,000 samples by one backward pass per sample, one penalty term per past
task, SGD lr 0.1, batch 128, one epoch per task, evaluation on all 5 test sets after each task.
Each task's data is a permuted copy of the training set, as such code usually builds it.

Prints one JSON object: phase times (import, data, train, fisher, eval, total) and the accuracy matrix.
Usage: python benchmarks/baseline_ewc.py DATA_DIR [--train-limit N]
"""

import time

T0 = time.perf_counter()
import gzip  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

IMPORT = time.perf_counter() - T0


def idx(path: Path) -> np.ndarray:
    raw = gzip.open(path).read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main() -> None:
    data_dir = Path(sys.argv[1])
    limit = int(sys.argv[sys.argv.index("--train-limit") + 1]) if "--train-limit" in sys.argv else 0
    torch.manual_seed(0)
    t = time.perf_counter()
    xtr = torch.tensor(idx(data_dir / "train-images-idx3-ubyte.gz").reshape(-1, 784), dtype=torch.float32) / 255
    ytr = torch.tensor(idx(data_dir / "train-labels-idx1-ubyte.gz"), dtype=torch.long)
    xte = torch.tensor(idx(data_dir / "t10k-images-idx3-ubyte.gz").reshape(-1, 784), dtype=torch.float32) / 255
    yte = torch.tensor(idx(data_dir / "t10k-labels-idx1-ubyte.gz"), dtype=torch.long)
    if limit:
        xtr, ytr = xtr[:limit], ytr[:limit]
    perms = [torch.randperm(784) for _ in range(5)]
    tasks = [(xtr[:, p], xte[:, p]) for p in perms]  # a permuted copy of the data per task
    data_time = time.perf_counter() - t

    model = nn.Sequential(nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    lam, fishers, anchors = 6.0, [], []
    times = {"train": 0.0, "fisher": 0.0, "eval": 0.0}
    acc = []
    for k, (x, xt) in enumerate(tasks):
        t = time.perf_counter()
        order = torch.randperm(len(x))
        for s in range(0, len(x), 128):
            b = order[s : s + 128]
            loss = F.cross_entropy(model(x[b]), ytr[b])
            for f, a in zip(fishers, anchors):  # one term per past task
                loss = loss + lam / 2 * sum((fi * (p - ai) ** 2).sum() for fi, p, ai in zip(f, model.parameters(), a))
            opt.zero_grad()
            loss.backward()
            opt.step()
        times["train"] += time.perf_counter() - t

        t = time.perf_counter()
        f = [torch.zeros_like(p) for p in model.parameters()]
        for i in torch.randperm(len(x))[:1000]:  # one backward pass per sample
            logp = F.log_softmax(model(x[i : i + 1]), 1)
            y = torch.multinomial(logp.exp(), 1)[0, 0]
            model.zero_grad()
            logp[0, y].backward()
            for fi, p in zip(f, model.parameters()):
                fi += p.grad.detach() ** 2 / 1000
        fishers.append(f)
        anchors.append([p.detach().clone() for p in model.parameters()])
        times["fisher"] += time.perf_counter() - t

        t = time.perf_counter()
        with torch.no_grad():
            acc.append([(model(te).argmax(1) == yte).float().mean().item() for _, te in tasks])
        times["eval"] += time.perf_counter() - t
    print(json.dumps({"import": IMPORT, "data": data_time, **times, "total": time.perf_counter() - T0, "acc": acc}))


if __name__ == "__main__":
    main()
