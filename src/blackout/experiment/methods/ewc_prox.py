"""EWC with its penalty applied as an exact proximal (implicit) step instead of through the gradient.

After each SGD step on the task loss alone, theta' = theta - lr * grad L, the merged EWC penalty
(lambda/2) sum_i A_i (theta_i - mu_i)^2 (``quadratic.py``: A = sum_t F_t, A mu = B = sum_t F_t theta_t)
is applied by its proximal map, the minimiser of (1/2 lr)||theta - theta'||^2 + (lambda/2) sum A (theta - mu)^2:

    theta <- (theta' + lr lambda A mu) / (1 + lr lambda A) = (theta' + lr lambda B) / (1 + lr lambda A).

An explicit gradient step on a quadratic of curvature c diverges once lr c > 2; the implicit step
contracts for every lr c >= 0, so this removes the step-size instability that the stability number
measures (which is still recorded, for comparison, and left out of the stability statistics).
Adam is refused: its per-weight step sizes are not lr, so this closed form would not be the
proximal step of the update Adam takes.
"""

from .ewc import EWC


class EWCProx(EWC):
    name = "ewc-prox"
    apply = "prox"
    gradient_penalty = False
