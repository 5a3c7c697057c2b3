"""Variational mixture of experts, VMoE (paper, section 4.2, Eqs. 2-6).

One layer shared by text and image tokens (the "uni-backbone"). Each expert is a
variational information bottleneck: mu_i = FFNN(M; theta_mu), log sigma_i^2 = FFNN(M;
theta_sigma) (Eq. 2), z_i = mu_i + sigma_i * eps in training (Eq. 3) and mu_i at inference,
so predictions are deterministic. A per-token softmax router G = softmax(W_g M + b_g) mixes
the experts, H = sum_i G_i z_i. Auxiliary losses: routing entropy (Eq. 4) and KL to N(0, I)
(Eq. 6), both averaged over real tokens only; padding positions are never computed.

Initialisation (`init`): "random" is the release's (PyTorch's default Linear init, so the
experts start different); "identity" starts every expert mean map at I + noise of std
`init_std` (the layer first passes the encoder's tokens through; with the default 1e-3
noise the experts stay near-copies, measured by `spread` in the diagnostics).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zsmie.choices import VMOE_INITS as INITS
from zsmie.losses.vib import gaussian_kl, routing_entropy


@dataclass
class VMoEOutput:
    hidden: Tensor  # [B, N, d] H = sum_i G_i z_i (zeros at padding)
    gates: Tensor  # [B, N, K] router weights G (zeros at padding)
    aux: Tensor  # scalar, mean routing entropy (Eq. 4); 0 at inference
    kl: Tensor  # scalar, mean over tokens of the KL of Eq. 6; 0 at inference
    stats: dict[str, Tensor] = field(default_factory=dict)  # detached diagnostics (training)


def expert_stats(gates: Tensor, mu: Tensor, logvar: Tensor, sample: int = 256) -> dict[str, Tensor]:
    """Diagnostics of one VMoE pass over real tokens; gates [T, K], mu / logvar [T, K, d].

    load [K]: mean gate per expert; entropy: mean routing entropy; spread: mean pairwise
    distance between the K expert means of a token, relative to their mean norm (0 when the
    experts are copies); sigma: mean standard deviation.
    """
    with torch.no_grad():
        k = mu.size(1)
        sub = mu[torch.linspace(0, len(mu) - 1, min(sample, len(mu))).long()].float()
        pairs = torch.cdist(sub, sub)  # [t, K, K]
        spread = pairs.sum((-1, -2)) / (k * (k - 1)) if k > 1 else pairs.new_zeros(len(sub))
        return {
            "load": gates.float().mean(0),
            "entropy": routing_entropy(gates.float()).mean(),
            "spread": (spread / sub.norm(dim=-1).mean(-1).clamp_min(1e-12)).mean(),
            "sigma": (0.5 * logvar.float()).exp().mean(),
        }


class VariationalMoE(nn.Module):
    def __init__(
        self,
        dim: int,
        experts: int = 8,
        init: str = "random",
        init_std: float = 1e-3,
        logvar_init: float = -6.0,
        kl_reduction: str = "mean",
    ) -> None:
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init = {init!r}: expected one of {INITS}")
        self.kl_reduction = kl_reduction
        self.dim, self.experts = dim, experts
        self.router = nn.Linear(dim, experts)
        self.mu = nn.Linear(dim, experts * dim)  # K expert mean maps, batched
        self.logvar = nn.Linear(dim, experts * dim)  # K expert log-variance maps, batched
        self.force_expert = -1  # >= 0: at inference, route every token to this expert (Figure 5)
        if init == "identity":
            with torch.no_grad():
                eye = torch.eye(dim).repeat(experts, 1)  # [K d, d]
                self.mu.weight.copy_(eye + init_std * torch.randn_like(eye))
                self.mu.bias.zero_()
                self.logvar.weight.mul_(0.01)
                self.logvar.bias.fill_(logvar_init)

    def forward(self, tokens: Tensor, mask: Tensor) -> VMoEOutput:
        """tokens M [B, N, d], mask [B, N] bool (false at padding) -> VMoEOutput."""
        real = tokens[mask]  # [T, d], the real tokens only
        t, d = real.shape
        gates = self.router(real).softmax(-1)  # [T, K]
        if self.force_expert >= 0 and not self.training:
            gates = F.one_hot(torch.full_like(gates[:, 0], self.force_expert).long(),
                              self.experts).to(real.dtype)
        mu = self.mu(real).view(t, self.experts, d)  # [T, K, d]
        hidden = tokens.new_zeros(tokens.shape)
        full_gates = tokens.new_zeros(*mask.shape, self.experts)
        full_gates[mask] = gates
        if not self.training:  # z = mu: no sampling, and the variance and losses are not needed
            hidden[mask] = (gates.unsqueeze(-1) * mu).sum(1)
            zero = tokens.new_zeros(())
            return VMoEOutput(hidden=hidden, gates=full_gates, aux=zero, kl=zero)
        logvar = self.logvar(real).view(t, self.experts, d).clamp(-20.0, 10.0)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        hidden[mask] = (gates.unsqueeze(-1) * z).sum(1)  # [T, d] scattered back to [B, N, d]
        kl = gaussian_kl(mu.unsqueeze(0), logvar.unsqueeze(0), self.kl_reduction)  # [1, T]
        return VMoEOutput(
            hidden=hidden,
            gates=full_gates,
            aux=routing_entropy(gates).mean() if t else tokens.new_zeros(()),
            kl=kl.mean() if t else tokens.new_zeros(()),
            stats=expert_stats(gates, mu, logvar) if t else {},
        )
