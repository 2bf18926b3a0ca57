"""Unstable weights, their drift and whether their inputs are active, on a constructed penalty."""

import torch

from blackout.experiment import stability
from tests.conftest import method_setup


def test_unstable_weights_count_drift_and_active_inputs():
    configs, streams, net, ewc = method_setup("ewc", lam=10.0, hidden=(5,))
    ewc.begin_task(net, streams.task(0), streams)
    ewc.consolidate(net, streams.task(0), streams)
    with torch.no_grad():
        for a in ewc.A:
            a.zero_()
        ewc.A[0][0, 2, 7] = 3.0  # lr 0.1 x lambda 10 x 3 = 3 >= 2: unstable, input pixel 7
        ewc.A[0][0, 4, 9] = 1.0  # 1 < 2: stable
        ewc.A[2][0, 1, 3] = 2.5  # unstable second-layer weight, fed by hidden unit 3
        ewc._coefficients()
        net.weights[0][0, 2, 7] += 0.5  # drifted from its anchor
    count, drift = stability.unstable(ewc, net)
    assert count == [2] and drift[0] >= 0.5
    x = torch.rand(1, 30, 64)
    x[..., 7] = 0.0  # pixel 7 blank in every image of this task: its unstable weight is silent
    with torch.no_grad():
        net.biases[0][0, 3] = -1e6  # hidden unit 3 never fires: the weight it feeds is silent too
    assert stability.unstable_active(ewc, net, x) == ([0], [None])
    x[0, 5, 7] = 0.3  # one image lights the pixel up: the drifted weight is within reach
    count, reach = stability.unstable_active(ewc, net, x)
    assert count == [1] and reach[0] == float((net.weights[0][0, 2, 7] - ewc.mu[0][0, 2, 7]).detach().abs())
