"""Variational information bottleneck terms of the VMoE layer (paper, Eqs. 4-6).

The compression term I(M, Z) of the bottleneck (Eq. 1) is intractable; Eq. 5 bounds it by
KL(q(Z|M) || p(Z)) with a standard normal prior, which Eq. 6 sums over the experts: that is
`gaussian_kl`. The other term, I(Z, Y), is bounded by the task loss (Eq. 7, losses/ranking.py).
"""

from __future__ import annotations

from torch import Tensor


def masked_token_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of per-token values [B, N] over real tokens (mask [B, N] bool) -> scalar."""
    weights = mask.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


def gaussian_kl(mu: Tensor, logvar: Tensor, reduction: str = "sum") -> Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) per token over its experts and dimensions (Eq. 6), the
    variational upper bound on I(M, Z) (Eq. 5).

    mu, logvar [B, N, K, d] -> [B, N]; 0.5 * sum(mu^2 + sigma^2 - 1 - log sigma^2).
    `sum` over experts and dimensions is Eq. 6 (and the release); `mean` divides by K * d,
    a per-dimension KL whose size does not grow with the hidden size.
    """
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)
    return kl.sum(dim=(-1, -2)) if reduction == "sum" else kl.mean(dim=(-1, -2))


def routing_entropy(gates: Tensor) -> Tensor:
    """Entropy of each token's routing distribution, -sum_i G_i log G_i (Eq. 4).

    gates [B, N, K] (rows sum to 1) -> [B, N]. Minimising it makes routing sparse.
    """
    return -(gates * gates.clamp_min(1e-12).log()).sum(-1)
